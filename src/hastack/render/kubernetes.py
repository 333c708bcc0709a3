"""`hastack render kubernetes`: the stack as Kubernetes manifests, built-in kinds only. Pure.

One file per concern, applied in name order by `kubectl apply -f DIR/`; every password and
private key is in `secrets/` (mode 0600), applied separately (or replaced by your own secret
manager's objects of the same names). docs/deploy-kubernetes.md explains the choices.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from typing import Any

from ruamel.yaml.scalarstring import LiteralScalarString

from hastack.errors import HastackError
from hastack.render.app import render_app_config
from hastack.render.kubernetes_backup import S3_SECRET_KEYS, repo_pgbackrest, repository
from hastack.render.kubernetes_edge import edge, edge_config
from hastack.render.kubernetes_names import K8sNames, metadata
from hastack.render.kubernetes_pods import disruption_budget
from hastack.render.kubernetes_policy import network_policies
from hastack.render.kubernetes_postgres import (
    bootstrap_sql,
    node_pgbackrest,
    patroni_config,
    post_bootstrap_script,
    rbac,
    services,
    statefulset,
)
from hastack.render.kubernetes_services import (
    app,
    app_environment,
    pgbouncer,
    pgbouncer_ini,
    redis,
    redis_conf,
)
from hastack.render.pgbouncer import render_pgbouncer_auth
from hastack.render.targets import SECRET_MODE, CertRequest, StackMaterial, Target, TargetFile
from hastack.render.yamltext import to_yaml
from hastack.spec.plan import StackPlan

SECRETS_DIR = "secrets"
TLS_COMPONENTS = ("postgres", "pgbouncer", "edge", "backup")


def _names(plan: StackPlan) -> K8sNames:
    return K8sNames(plan.name)


def certificates(plan: StackPlan) -> dict[str, CertRequest]:
    """The pods' certificates, by the Service names clients verify (verify-full): in
    Kubernetes a pod's address changes with every restart, its DNS name does not."""
    names = _names(plan)

    def both(*services: str) -> tuple[str, ...]:
        return tuple(n for s in services for n in (names.svc(s), names.fqdn(s)))

    pods = tuple(names.pg_pod_dns(i) for i in range(plan.spec.postgres.nodes))
    wanted = {
        # One for every PostgreSQL pod (a StatefulSet's pods share their volumes): each
        # pod's stable name for replication and Patroni's REST API, the Services for
        # PgBouncer and direct clients. Also the client certificate pgBackRest shows the
        # repository, which admits it by this common name.
        "postgres": CertRequest(
            names.of("pg"),
            pods + both(names.rw, names.of("ro"), names.of("pg")),
            client=True,
        ),
        "pgbouncer": CertRequest(names.of("pgbouncer"), both(names.of("pgbouncer"))),
    }
    if plan.app_instances:
        public = tuple(plan.spec.http.tls.hostnames)
        wanted["edge"] = CertRequest(names.of("edge"), public + both(names.of("edge")))
    if plan.backup_enabled:
        wanted["backup"] = CertRequest(names.of("backup"), both(names.of("backup")), client=True)
    return wanted


def _check(plan: StackPlan) -> None:
    spec = plan.spec
    problems = []
    if spec.standby_cluster is not None:
        problems.append("a standby cluster (standby_cluster): it streams from a local stack")
    if spec.http.tls.cert is not None:
        problems.append(
            "your own HTTPS certificate (http.tls.cert): the render issues the edge's; "
            "replace the Secret's tls.crt and tls.key with yours after applying"
        )
    if spec.backup.enabled and spec.backup.s3 is not None and spec.backup.s3.ca_file:
        problems.append("backup.s3.ca_file: a file on this machine, not in the pods")
    if spec.postgres.version != 15:
        problems.append(f"postgres.version {spec.postgres.version}: the image has 15")
    if problems:
        raise HastackError(
            f"stack {plan.name!r} cannot be rendered for kubernetes",
            "remove these from the spec for this render",
            problems,
        )


def _doc(kind: str, names: K8sNames, name: str, component: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": metadata(names, name, component), **body}


def _text(value: str) -> Any:
    """A multi-line value written as a YAML block (readable, and diffs line by line)."""
    return LiteralScalarString(value)


def _secret(names: K8sNames, name: str, data: dict[str, str], kind: str = "Opaque") -> Any:
    values = {k: _text(v) if "\n" in v else v for k, v in data.items()}
    return _doc("Secret", names, name, "secret", type=kind, stringData=values)


def _secrets(plan: StackPlan, material: StackMaterial) -> list[dict[str, Any]]:
    names, s = _names(plan), material.secrets
    docs = [
        _secret(
            names,
            names.of("postgres"),
            {
                "postgres_password": s.postgres_password,
                "replication_password": s.replication_password,
                "rewind_password": s.rewind_password,
                "patroni_rest_password": s.patroni_rest_password,
            },
        ),
        # SCRAM verifiers, not passwords: still a secret (they open offline guessing).
        _secret(
            names, names.of("pgbouncer-auth"), {"userlist.txt": render_pgbouncer_auth(plan, s)}
        ),
        _secret(names, names.of("redis"), {"password.conf": f"requirepass {s.redis_password}\n"}),
        _secret(names, names.of("bootstrap"), {"roles.sql": bootstrap_sql(plan, s)}),
    ]
    if plan.app_instances:
        docs += [
            _secret(names, names.of("app"), app_environment(plan, names, s)),
            _secret(names, names.of("edge"), {"haproxy_stats_password": s.haproxy_stats_password}),
        ]
    if plan.backup_enabled:
        ciphers = {"backup_cipher_pass": s.backup_cipher_pass}
        if plan.spec.backup.s3 is not None:
            ciphers["backup_s3_cipher_pass"] = s.backup_s3_cipher_pass
        docs.append(_secret(names, names.of("backup"), ciphers))
    return docs


def _tls_secrets(plan: StackPlan, material: StackMaterial) -> list[dict[str, Any]]:
    names = _names(plan)
    docs = []
    for component in TLS_COMPONENTS:
        if component not in certificates(plan):
            continue
        issued = material.issued.get(component)
        if issued is None:
            raise HastackError(f"no certificate {component!r} was issued for the render")
        data = {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem}
        docs.append(_secret(names, names.of(f"tls-{component}"), data, "kubernetes.io/tls"))
    return docs


def _config_maps(plan: StackPlan, material: StackMaterial) -> dict[str, dict[str, str]]:
    """Every ConfigMap's data, by name: what the pods read. No secret in any of them."""
    names = _names(plan)
    maps = {
        names.of("ca"): {"ca.crt": material.ca_cert_pem},
        names.of("patroni"): {
            "patroni.yml": to_yaml(patroni_config(plan, names)),
            "post-bootstrap.sh": post_bootstrap_script(plan),
        },
        names.of("pgbouncer"): {"pgbouncer.ini": pgbouncer_ini(plan, names)},
        names.of("redis"): {"redis.conf": redis_conf(plan)},
    }
    if plan.app_instances:
        maps[names.of("app-config")] = {"app.json": render_app_config(plan)}
        maps[names.of("edge")] = {"haproxy.cfg": edge_config(plan, names)}
    if plan.backup_enabled:
        maps[names.of("pgbackrest")] = {"pgbackrest.conf": node_pgbackrest(plan, names)}
        maps[names.of("backup")] = {"pgbackrest.conf": repo_pgbackrest(plan, names)}
    return maps


def _digest(maps: dict[str, dict[str, str]], *config_maps: str) -> str:
    """Of the ConfigMaps a pod reads: in its template, a changed config rolls the pods."""
    text = "".join(f"{n}\0{k}\0{v}\0" for n in config_maps for k, v in sorted(maps[n].items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file(path: str, header: str, docs: list[dict[str, Any]], mode: int = 0o644) -> TargetFile:
    body = "---\n".join(to_yaml(d) for d in docs)
    return TargetFile(PurePosixPath(path), header + body, mode)


def _header(plan: StackPlan, what: str) -> str:
    return (
        f"# Generated by hastack for stack {plan.name!r}: {what}.\n"
        "# Do not edit: `hastack render kubernetes` rewrites it. Apply: see README.\n"
    )


def render(plan: StackPlan, material: StackMaterial) -> list[TargetFile]:
    _check(plan)
    names = _names(plan)
    maps = _config_maps(plan, material)
    pg_digest = _digest(
        maps, *(m for m in maps if m in {names.of("patroni"), names.of("pgbackrest")})
    )
    namespace = _doc(
        "Namespace",
        names,
        names.namespace,
        "namespace",
        # Every pod of the stack meets the "restricted" Pod Security Standard.
        metadata={
            "name": names.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "hastack",
                "app.kubernetes.io/instance": names.stack,
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    )
    config_docs = [
        _doc("ConfigMap", names, name, "config", data={k: _text(v) for k, v in data.items()})
        for name, data in maps.items()
    ]
    pg_set = statefulset(plan, names)
    pg_set["spec"]["template"]["metadata"]["annotations"] = {"hastack.io/config-digest": pg_digest}
    files = [
        _file("00-namespace.yaml", _header(plan, "its namespace"), [namespace]),
        _file("01-config.yaml", _header(plan, "configuration (no secrets)"), config_docs),
        _file("02-rbac.yaml", _header(plan, "Patroni's access to the API"), rbac(names)),
        _file(
            "10-postgres.yaml",
            _header(plan, "Patroni and PostgreSQL"),
            [*services(plan, names), pg_set, disruption_budget(names, "postgres", names.of("pg"))],
        ),
        _file(
            "20-pgbouncer.yaml",
            _header(plan, "PgBouncer"),
            [
                *pgbouncer(plan, names, _digest(maps, names.of("pgbouncer"))),
                disruption_budget(names, "pgbouncer", names.of("pgbouncer")),
            ],
        ),
        _file(
            "30-redis.yaml",
            _header(plan, "Redis"),
            redis(plan, names, _digest(maps, names.of("redis"))),
        ),
    ]
    files += _optional_files(plan, names, maps)
    files.append(
        _file(
            "90-network-policies.yaml",
            _header(plan, "network policies"),
            network_policies(plan, names),
        )
    )
    files += [
        _file(
            f"{SECRETS_DIR}/00-secrets.yaml",
            _header(plan, "passwords"),
            _secrets(plan, material),
            SECRET_MODE,
        ),
        _file(
            f"{SECRETS_DIR}/01-tls.yaml",
            _header(plan, "TLS keys"),
            _tls_secrets(plan, material),
            SECRET_MODE,
        ),
        TargetFile(PurePosixPath("README"), readme(plan)),
    ]
    return files


def _optional_files(
    plan: StackPlan, names: K8sNames, maps: dict[str, dict[str, str]]
) -> list[TargetFile]:
    files = []
    if plan.app_instances:
        app_docs = app(plan, names, _digest(maps, names.of("app-config")))
        app_docs.append(disruption_budget(names, "app", names.of("app")))
        edge_docs = edge(plan, names, _digest(maps, names.of("edge")))
        edge_docs.append(disruption_budget(names, "edge", names.of("edge")))
        files += [
            _file("40-app.yaml", _header(plan, "the app tier and its autoscaler"), app_docs),
            _file("50-edge.yaml", _header(plan, "the HTTP edge (HAProxy)"), edge_docs),
        ]
    if plan.backup_enabled:
        docs = repository(plan, names, _digest(maps, names.of("backup")))
        files.append(
            _file("60-backup.yaml", _header(plan, "pgBackRest's repository and schedule"), docs)
        )
    return files


def next_steps(plan: StackPlan, out: str) -> list[str]:
    names = _names(plan)
    ns = names.namespace
    steps = [
        f"push the image {names.stack!r} runs to a registry your cluster pulls from "
        "(`hastack image build`; see README)",
        f"kubectl apply -f {out}/00-namespace.yaml",
        f"kubectl apply -f {out}/{SECRETS_DIR}/   (or create Secrets of the same names)",
    ]
    if plan.backup_enabled and plan.spec.backup.s3 is not None:
        key, secret = S3_SECRET_KEYS
        steps.append(
            f"kubectl -n {ns} create secret generic {names.of('backup-s3')} "
            f"--from-literal={key}=ACCESS_KEY --from-literal={secret}=SECRET_KEY"
        )
    steps += [
        f"kubectl apply -f {out}/",
        f"kubectl -n {ns} rollout status statefulset/{names.of('pg')}",
    ]
    if plan.backup_enabled:
        steps.append(
            f"kubectl -n {ns} create job --from=cronjob/{names.of('backup-full')} "
            f"{names.of('backup-first')}   (the first full backup now)"
        )
    return steps


def readme(plan: StackPlan) -> str:
    names = _names(plan)
    steps = "\n".join(f"  {s}" for s in next_steps(plan, "DIR"))
    return f"""\
Kubernetes manifests of hastack stack {plan.name!r}, namespace {names.namespace}.
Generated by `hastack render kubernetes`; docs/deploy-kubernetes.md explains them.

Apply (kubectl applies the files of a directory in name order, not its subdirectories):
{steps}

{SECRETS_DIR}/ holds every password and private key (mode 0600): apply it yourself, or
create Secrets of the same names with your secret manager and leave these files out.

Clients inside the cluster (with the CA from ConfigMap {names.of("ca")}, verify-full):
  PgBouncer    {names.svc(names.of("pgbouncer"))}:{plan.spec.pgbouncer.port}
  read-write   {names.svc(names.rw)}:{plan.spec.postgres.port}
  read-only    {names.svc(names.of("ro"))}:{plan.spec.postgres.port}
The app's connection settings are in Secret {names.of("app")}.
"""


TARGET = Target(
    name="kubernetes",
    summary="Kubernetes manifests: Patroni StatefulSet (Kubernetes API as DCS), PgBouncer, "
    "Redis, the app with its HPA, an HAProxy edge, pgBackRest CronJobs, NetworkPolicies",
    render=render,
    certificates=certificates,
    next_steps=next_steps,
)
