"""Kubernetes: the pieces every workload of the target is built from. Pure."""

from __future__ import annotations

from typing import Any

from hastack.render.kubernetes_names import K8sNames, labels, metadata


def pod_security(uid: int) -> dict[str, Any]:
    """Pod Security Standards "restricted" (the namespace enforces it): never root, the
    runtime's seccomp profile. fsGroup makes the volumes and the mounted keys readable by
    the pod's user."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def empty_dir(name: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {}}


def config_volume(name: str, config_map: str) -> dict[str, Any]:
    return {"name": name, "configMap": {"name": config_map}}


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def anti_affinity(selector: dict[str, str], *, required: bool) -> dict[str, Any]:
    """Pods of one component on different nodes: required where two on one machine would
    fail together (PostgreSQL), preferred elsewhere (a small cluster may have too few
    nodes, and a second pod on a node still survives a crash of the first)."""
    term = {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}
    if required:
        rule: dict[str, Any] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    else:
        rule = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}
            ]
        }
    return {"podAntiAffinity": rule}


def service(
    names: K8sNames,
    name: str,
    component: str,
    selector: dict[str, str] | None,
    ports: list[dict[str, Any]],
) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{**p, "protocol": "TCP"} for p in ports]}
    if selector is not None:
        spec["selector"] = selector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(names, name, component),
        "spec": spec,
    }


def disruption_budget(names: K8sNames, component: str, name: str) -> dict[str, Any]:
    """At most one pod of the component evicted at a time (a drain, an upgrade): for
    PostgreSQL one node of three, so quorum and the synchronous standby survive."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(names, name, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(names, component)}},
    }


def deployment(
    names: K8sNames,
    name: str,
    component: str,
    pod: dict[str, Any],
    replicas: int | None,
    annotations: dict[str, str],
) -> dict[str, Any]:
    """`replicas` None: an HPA owns the count (an apply must not reset what it scaled to)."""
    selector = labels(names, component)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        # A new pod is ready before an old one goes: capacity never drops in a rollout.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {"metadata": {"labels": selector, "annotations": annotations}, "spec": pod},
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(names, name, component),
        "spec": spec,
    }
