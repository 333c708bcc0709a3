"""Kubernetes: Patroni and PostgreSQL as a StatefulSet, with Patroni's kubernetes DCS. Pure.

The DCS is the Kubernetes API itself (no etcd in the cluster): `use_endpoints: true`.
Patroni then holds its leader lock in the Endpoints object named after its scope and writes
the leader's pod IP into that same object in the same update, so the read-write Service
(selector-less, that Endpoints' Service) points at the lock holder and at nothing else: an
old primary cut off from the API server can neither keep the lock nor stay in the Service.
With ConfigMaps the lock and the `role` label are separate writes, and for a while a
Service selecting `role=primary` could route to two pods. (The v1 Endpoints API is
deprecated from 1.33 but still served; Patroni's requests only draw a warning.)

Replicas' Service selects the `role: replica` label Patroni 4 puts on streaming replicas,
and a pod is ready only while Patroni's /readiness says it is not too far behind.
"""

from __future__ import annotations

from typing import Any

from hastack.render.kubernetes_names import (
    CA_CERT,
    CA_DIR,
    CONFIG_DIR,
    DATA_DIR,
    PGBACKREST_DIR,
    PGDATA,
    SIDECAR_RESOURCES,
    SOCKET_DIR,
    TLS_CERT,
    TLS_DIR,
    TLS_KEY,
    TMP_DIR,
    K8sNames,
    image,
    labels,
    metadata,
    postgres_resources,
    postgres_uid,
)
from hastack.render.kubernetes_pods import (
    anti_affinity,
    config_volume,
    container_security,
    empty_dir,
    pod_security,
    secret_env,
    service,
)
from hastack.render.patroni import ServerFiles, dcs_settings, pg_hba, server_parameters
from hastack.render.pgbackrest import common_options, ini_text
from hastack.spec import roles
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import Secrets

PATRONI_CONFIG = f"{CONFIG_DIR}/patroni.yml"
BOOTSTRAP_DIR = "/etc/hastack/bootstrap"
POST_BOOTSTRAP = f"{CONFIG_DIR}/post-bootstrap.sh"
PGBACKREST_WORK = f"{DATA_DIR}/pgbackrest"
"""pgBackRest's spool, lock and log directories: on the volume, so WAL queued for the
repository survives a restart of the pod."""
SCOPE_LABEL = "cluster-name"
ROLE_LABEL = "role"
PRIMARY_LABEL = "primary"
REPLICA_LABEL = "replica"
EVERYWHERE = ("0.0.0.0/0", "::/0")
"""pg_hba's networks: pod addresses are the cluster's to choose; the NetworkPolicies admit
only the stack's own pods, and every connection still needs TLS and a SCRAM password."""


def pgbackrest_command(plan: StackPlan, *args: str) -> str:
    return " ".join([str(plan.spec.binaries.pgbackrest), f"--stanza={plan.stanza}", *args])


def patroni_config(plan: StackPlan, names: K8sNames) -> dict[str, Any]:
    """Patroni's config file, the same for every pod: what differs per pod (its name and
    addresses) and every password come from the pod's environment."""
    spec = plan.spec
    verify = {"sslmode": "verify-full", "sslrootcert": CA_CERT}
    initdb: list[Any] = [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}]
    if spec.postgres.data_checksums:
        initdb.append("data-checksums")
    files = ServerFiles(
        socket_dir=SOCKET_DIR,
        tls_cert=TLS_CERT,
        tls_key=TLS_KEY,
        log_dir=f"{DATA_DIR}/log",
        archive_command=pgbackrest_command(plan, "archive-push", "%p"),
    )
    # The container's output is the pod's log (kubectl logs): no collector, no log files.
    parameters = server_parameters(plan, files, {"logging_collector": "off"})
    return {
        "scope": names.scope,
        "log": {"level": "INFO"},
        "restapi": {
            "listen": f"0.0.0.0:{spec.patroni.rest_port}",
            # HTTPS only, as locally: the write endpoints' password never crosses a link in
            # clear; peers are verified by the stack's CA.
            "certfile": TLS_CERT,
            "keyfile": TLS_KEY,
            "cafile": CA_CERT,
            "verify_client": "none",
            "authentication": {"username": roles.PATRONI_REST},
        },
        "kubernetes": {
            "namespace": names.namespace,
            # Patroni finds its pods by these and its scope label (pod_labels below).
            "labels": labels(names, "postgres"),
            "scope_label": SCOPE_LABEL,
            "use_endpoints": True,
            # The read-write Service's port has this name: Patroni writes it with the
            # leader's address into the Endpoints.
            "ports": [{"name": "postgresql", "port": spec.postgres.port}],
            "role_label": ROLE_LABEL,
            "leader_label_value": PRIMARY_LABEL,
            "follower_label_value": REPLICA_LABEL,
        },
        "bootstrap": {
            "dcs": dcs_settings(plan),
            "initdb": initdb,
            # Once, when Patroni creates the cluster: the roles and the database that `up`
            # makes locally (Patroni passes the superuser's connection string).
            "post_bootstrap": f"/bin/sh {POST_BOOTSTRAP}",
        },
        "postgresql": {
            "listen": f"0.0.0.0:{spec.postgres.port}",
            "data_dir": PGDATA,
            "use_unix_socket": True,
            "bin_dir": str(plan.postgres_bin_dir),
            "pgpass": f"{TMP_DIR}/pgpass",
            "authentication": {
                "superuser": {"username": roles.SUPERUSER},
                "replication": {"username": roles.REPLICATION, **verify},
                "rewind": {"username": roles.REWIND, **verify},
            },
            "basebackup": {"checkpoint": "fast"},
            **_backup_methods(plan),
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
            "parameters": parameters,
            "pg_hba": pg_hba(plan, EVERYWHERE),
        },
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def _backup_methods(plan: StackPlan) -> dict[str, Any]:
    """As locally (render/patroni.py backup_methods): replicas from the repository once a
    backup exists, through the repository Service."""
    if not plan.backup_enabled:
        return {}
    return {
        "create_replica_methods": ["pgbackrest", "basebackup"],
        "pgbackrest": {
            "command": pgbackrest_command(plan, "--delta", "restore"),
            "keep_data": True,
            "no_params": True,
        },
        "recovery_conf": {"restore_command": pgbackrest_command(plan, "archive-get", "%f", '"%p"')},
    }


def post_bootstrap_script(plan: StackPlan) -> str:
    psql = f"{plan.postgres_bin_dir}/psql"
    return (
        "#!/bin/sh\n# Generated by hastack: Patroni's post_bootstrap (roles and database).\n"
        f'exec {psql} "$1" -X -q -v ON_ERROR_STOP=1 -f {BOOTSTRAP_DIR}/roles.sql\n'
    )


def bootstrap_sql(plan: StackPlan, secrets: Secrets) -> str:
    """What runtime/database.py `ensure_database` does on a new local cluster: `app_owner`
    owns the database, `app` (through its two logins) gets DML by default privileges,
    `readonly` reads, `monitor` sees statistics. Passwords as the SCRAM verifiers PgBouncer
    holds (a secret still: the Secret holds this file)."""
    db, app, ro, owner = plan.spec.postgres.database, roles.APP, roles.READONLY, roles.OWNER
    logins = [(login, secrets.password_of(login)) for login in roles.APP_LOGINS]
    logins += [(ro, secrets.readonly_password), (roles.MONITOR, secrets.monitor_password)]
    lines = [f"CREATE ROLE {owner} NOLOGIN;", f"CREATE ROLE {app} NOLOGIN;"]
    lines += [
        f"CREATE ROLE {role} LOGIN PASSWORD '{secrets.scram(role, password)}';"
        for role, password in logins
    ]
    lines += [f"GRANT {app} TO {', '.join(roles.APP_LOGINS)};"]
    lines += [
        f"ALTER ROLE {r} SET default_transaction_read_only = on;" for r in (ro, roles.MONITOR)
    ]
    lines += [
        f"GRANT pg_monitor TO {roles.MONITOR};",
        f"CREATE DATABASE {db} OWNER {owner};",
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC;",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {app}, {ro};",
        f"GRANT CONNECT ON DATABASE {db} TO {roles.MONITOR};",
        f"\\connect {db}",
        f"ALTER SCHEMA public OWNER TO {owner};",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        f"GRANT USAGE ON SCHEMA public TO {app}, {ro};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {app};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT SELECT ON TABLES TO {ro};",
    ]
    return (
        f"-- Generated by hastack for stack {plan.name!r}: run once by Patroni.\n"
        + "\n".join(lines)
        + "\n"
    )


def node_pgbackrest(plan: StackPlan, names: K8sNames) -> str:
    """pgBackRest in each PostgreSQL pod: the repository through its Service (TLS, the pods'
    certificate as client certificate), and a TLS server of its own that only the
    repository's certificate may use (the repository takes backups through it)."""
    port = plan.spec.backup.port
    tls = [("cert-file", TLS_CERT), ("key-file", TLS_KEY), ("ca-file", CA_CERT)]
    repos: list[tuple[str, str | int]] = []
    for repo in plan.backup_repos:
        repos += [
            (f"repo{repo}-host", names.svc(names.of("backup"))),
            (f"repo{repo}-host-type", "tls"),
            (f"repo{repo}-host-port", port),
            *((f"repo{repo}-host-{key}", value) for key, value in tls),
        ]
    global_options: list[tuple[str, str | int]] = [
        *repos,
        ("archive-async", "y"),
        *common_options(plan, PGBACKREST_WORK),
        ("tls-server-address", "0.0.0.0"),
        ("tls-server-port", port),
        *((f"tls-server-{key}", value) for key, value in tls),
        ("tls-server-auth", f"{names.of('backup')}={plan.stanza}"),
    ]
    stanza: list[tuple[str, str | int]] = [
        ("pg1-path", PGDATA),
        ("pg1-port", plan.spec.postgres.port),
        ("pg1-socket-path", SOCKET_DIR),
        ("pg1-user", roles.SUPERUSER),
    ]
    header = (
        f"# Generated by hastack for stack {plan.name!r} (kubernetes), every PostgreSQL pod.\n"
        "# The repository, its passphrase and the backups live in the backup pod.\n"
    )
    sections: dict[str, list[tuple[str, str | int]]] = {
        "global": global_options,
        # Synchronous with a short timeout, as locally: a replica's start must not wait a
        # minute for an unreachable repository before it tries streaming.
        "global:archive-get": [("archive-async", "n"), ("io-timeout", 5)],
        plan.stanza: stanza,
    }
    return ini_text(sections, header)


def _pg_env(plan: StackPlan, names: K8sNames) -> list[dict[str, Any]]:
    spec = plan.spec
    own = f"$(PATRONI_NAME).{names.svc(names.of('pg'))}"
    field = {"PATRONI_NAME": "metadata.name", "PATRONI_KUBERNETES_POD_IP": "status.podIP"}
    env: list[dict[str, Any]] = [
        {"name": key, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}
        for key, path in field.items()
    ]
    env += [
        # By the pod's stable name, which the certificate carries: replicas stream from the
        # leader with verify-full, and Patroni's peers check its REST API by name.
        {"name": "PATRONI_POSTGRESQL_CONNECT_ADDRESS", "value": f"{own}:{spec.postgres.port}"},
        {"name": "PATRONI_RESTAPI_CONNECT_ADDRESS", "value": f"{own}:{spec.patroni.rest_port}"},
        {"name": "PATRONICTL_CONFIG_FILE", "value": PATRONI_CONFIG},
        {"name": "HOME", "value": TMP_DIR},
    ]
    secret = names.of("postgres")
    env += [
        secret_env("PATRONI_SUPERUSER_PASSWORD", secret, "postgres_password"),
        secret_env("PATRONI_REPLICATION_PASSWORD", secret, "replication_password"),
        secret_env("PATRONI_REWIND_PASSWORD", secret, "rewind_password"),
        secret_env("PATRONI_RESTAPI_PASSWORD", secret, "patroni_rest_password"),
    ]
    return env


def _mounts(plan: StackPlan) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "socket", "mountPath": SOCKET_DIR},
        {"name": "tmp", "mountPath": TMP_DIR},
        {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
        {"name": "ca", "mountPath": CA_DIR, "readOnly": True},
        {"name": "patroni", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "bootstrap", "mountPath": BOOTSTRAP_DIR, "readOnly": True},
    ]
    if plan.backup_enabled:
        mounts.append({"name": "pgbackrest", "mountPath": PGBACKREST_DIR, "readOnly": True})
    return mounts


def _probe(plan: StackPlan, path: str, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "patroni", "scheme": "HTTPS"},
        "periodSeconds": period_s,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _patroni_container(plan: StackPlan, names: K8sNames) -> dict[str, Any]:
    spec = plan.spec
    work = " ".join(f"{PGBACKREST_WORK}/{d}" for d in ("spool", "lock", "log"))
    # stdin from /dev/null, as locally: a backend that loses its postmaster must not block
    # reading it.
    start = f'mkdir -p {work} && exec "$0" "$@" </dev/null'
    lag = spec.haproxy.replica_max_lag_bytes
    return {
        "name": "patroni",
        "image": image(plan),
        "command": ["/bin/sh", "-c", start, str(spec.binaries.patroni), PATRONI_CONFIG],
        "env": _pg_env(plan, names),
        "ports": [
            {"name": "postgresql", "containerPort": spec.postgres.port},
            {"name": "patroni", "containerPort": spec.patroni.rest_port},
        ],
        # Ready: the leader, or a replica streaming within the lag HAProxy allows locally
        # (the read-only Service then skips replicas too far behind).
        "readinessProbe": _probe(plan, f"/readiness?lag={lag}", 5, 3),
        # Patroni's loop has run lately; generous, since a restart of the leader's pod is
        # a failover.
        "livenessProbe": _probe(plan, "/liveness", 10, 6),
        "resources": postgres_resources(plan).spec(),
        "securityContext": container_security(),
        "volumeMounts": _mounts(plan),
    }


def _pgbackrest_server(plan: StackPlan, names: K8sNames) -> dict[str, Any]:
    """pgBackRest's TLS server beside PostgreSQL: the repository reads the data directory
    through it for a backup, and it connects to PostgreSQL over the shared socket."""
    return {
        "name": "pgbackrest",
        "image": image(plan),
        "command": [str(plan.spec.binaries.pgbackrest), "server"],
        "env": [secret_env("PGPASSWORD", names.of("postgres"), "postgres_password")],
        "ports": [{"name": "pgbackrest", "containerPort": plan.spec.backup.port}],
        "readinessProbe": {"tcpSocket": {"port": "pgbackrest"}, "periodSeconds": 10},
        "resources": SIDECAR_RESOURCES.spec(),
        "securityContext": container_security(),
        "volumeMounts": _mounts(plan),
    }


def pod_labels(names: K8sNames) -> dict[str, str]:
    """A PostgreSQL pod's labels: Patroni lists its members by all of them (and adds `role`)."""
    return {**labels(names, "postgres"), SCOPE_LABEL: names.scope}


def statefulset(plan: StackPlan, names: K8sNames) -> dict[str, Any]:
    pg = names.of("pg")
    selector = labels(names, "postgres")
    containers = [_patroni_container(plan, names)]
    volumes = [
        empty_dir("socket"),
        empty_dir("tmp"),
        {"name": "tls", "secret": {"secretName": names.of("tls-postgres"), "defaultMode": 0o440}},
        config_volume("ca", names.of("ca")),
        config_volume("patroni", names.of("patroni")),
        {
            "name": "bootstrap",
            "secret": {"secretName": names.of("bootstrap"), "defaultMode": 0o440},
        },
    ]
    if plan.backup_enabled:
        containers.append(_pgbackrest_server(plan, names))
        volumes.append(config_volume("pgbackrest", names.of("pgbackrest")))
    uid = postgres_uid(plan)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(names, pg, "postgres"),
        "spec": {
            "serviceName": pg,
            "replicas": plan.spec.postgres.nodes,
            # Patroni decides who leads; pods start and stop in any order.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels(names)},
                "spec": {
                    "serviceAccountName": names.of("patroni"),
                    # Patroni stops PostgreSQL (fast) and releases the leader key on TERM.
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": pod_security(uid),
                    # Required: two PostgreSQL nodes on one machine would fail together.
                    "affinity": anti_affinity(selector, required=True),
                    "containers": containers,
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data", "labels": selector},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }
            ],
        },
    }


def services(plan: StackPlan, names: K8sNames) -> list[dict[str, Any]]:
    pg_port = plan.spec.postgres.port
    port = {"name": "postgresql", "port": pg_port, "targetPort": pg_port}
    selector = labels(names, "postgres")
    headless = service(names, names.of("pg"), "postgres", None, [port])
    headless["spec"].update(
        {
            "clusterIP": "None",
            "selector": selector,
            # A pod's name resolves before it is ready: a replica being cloned streams from
            # the leader by name, and the leader may be starting.
            "publishNotReadyAddresses": True,
        }
    )
    # No selector: Patroni keeps its Endpoints (the leader's address, with the lock).
    rw = service(names, names.rw, "postgres", None, [port])
    ro = service(names, names.of("ro"), "postgres", {**selector, ROLE_LABEL: REPLICA_LABEL}, [port])
    config = service(names, names.patroni_config, "postgres", None, [])
    config["spec"]["clusterIP"] = "None"
    return [headless, rw, ro, config]


def rbac(names: K8sNames) -> list[dict[str, Any]]:
    """What Patroni's kubernetes DCS needs, in the stack's namespace only: its Endpoints
    (leader, config, sync, failover) and the pods' labels and status annotations."""
    account = names.of("patroni")
    rules = [
        {
            "apiGroups": [""],
            "resources": ["endpoints"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(names, account, "postgres"),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(names, account, "postgres"),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(names, account, "postgres"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": names.namespace}],
        },
    ]
