"""Kubernetes: the NetworkPolicies. Pure.

Nothing in the namespace talks to anything until a policy says so (default deny, both
ways); then each flow the stack needs is allowed at both ends, by the pods' labels and the
port, as the local stack's addresses and pg_hba allow it. Kubelet probes come from the
node, which the common network plugins (Calico, Cilium) admit to their own pods anyway.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from hastack.render.kubernetes_names import K8sNames, labels, metadata
from hastack.spec.plan import StackPlan

ANYWHERE = [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
API_SERVER_PORTS = (443, 6443)
"""Where the Kubernetes API answers (its Service's port, and the usual port behind it): the
cluster's to choose, hence any address."""


def _policy(names: K8sNames, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(names, names.of(name), "network"),
        "spec": spec,
    }


def _pods(names: K8sNames, component: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": labels(names, component)}}


def _ports(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def _flow(names: K8sNames, src: str, dst: str, *ports: int) -> list[dict[str, Any]]:
    """`src` may reach `dst` on `ports`: its egress and dst's ingress."""
    return [
        _policy(
            names,
            f"{src}-to-{dst}",
            {
                **_pods(names, src),
                "policyTypes": ["Egress"],
                "egress": [{"to": [_pods(names, dst)], "ports": _ports(*ports)}],
            },
        ),
        _policy(
            names,
            f"{dst}-from-{src}",
            {
                **_pods(names, dst),
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [_pods(names, src)], "ports": _ports(*ports)}],
            },
        ),
    ]


def _egress_anywhere(names: K8sNames, name: str, component: str, *ports: int) -> dict[str, Any]:
    return _policy(
        names,
        name,
        {
            **_pods(names, component),
            "policyTypes": ["Egress"],
            "egress": [{"to": ANYWHERE, "ports": _ports(*ports)}],
        },
    )


def _baseline(names: K8sNames) -> list[dict[str, Any]]:
    dns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    return [
        _policy(names, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _policy(
            names,
            "dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [dns],
                        "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")],
                    }
                ],
            },
        ),
    ]


def network_policies(plan: StackPlan, names: K8sNames) -> list[dict[str, Any]]:
    spec = plan.spec
    pg, rest, repo = spec.postgres.port, spec.patroni.rest_port, spec.backup.port
    policies = _baseline(names)
    # Patroni's DCS is the API server.
    policies.append(_egress_anywhere(names, "postgres-to-api", "postgres", *API_SERVER_PORTS))
    # Streaming, pg_rewind and Patroni's REST API between the nodes.
    policies += _flow(names, "postgres", "postgres", pg, rest)
    policies += _flow(names, "pgbouncer", "postgres", pg)
    if plan.app_instances:
        policies += _flow(names, "app", "pgbouncer", spec.pgbouncer.port)
        policies += _flow(names, "app", "redis", spec.redis.port)
        # DATABASE_URL_DIRECT, for what a pooler in transaction mode cannot carry.
        policies += _flow(names, "app", "postgres", pg)
        policies += _flow(names, "edge", "app", spec.app.port)
        policies.append(_edge_ingress(plan, names))
        tracing = spec.app.tracing.otlp_endpoint
        if tracing is not None:
            port = urlsplit(tracing).port or (443 if tracing.startswith("https") else 80)
            policies.append(_egress_anywhere(names, "app-to-tracing", "app", port))
    if plan.backup_enabled:
        # WAL and replicas' restores to and from the repository; backups through each
        # node's pgBackRest server, from the repository pod and the backup jobs.
        policies += _flow(names, "postgres", "backup", repo)
        policies += _flow(names, "backup", "postgres", repo)
        policies += _flow(names, "backup-job", "postgres", repo)
        if spec.backup.s3 is not None:
            s3_port = spec.backup.s3.port
            policies.append(_egress_anywhere(names, "backup-to-s3", "backup", s3_port))
            policies.append(_egress_anywhere(names, "backup-job-to-s3", "backup-job", s3_port))
    return policies


def _edge_ingress(plan: StackPlan, names: K8sNames) -> dict[str, Any]:
    """The public entry: anyone may reach the edge's HTTP and HTTPS ports."""
    http = plan.spec.http
    return _policy(
        names,
        "edge-from-anywhere",
        {
            **_pods(names, "edge"),
            "policyTypes": ["Ingress"],
            "ingress": [{"from": ANYWHERE, "ports": _ports(http.http_port, http.https_port)}],
        },
    )
