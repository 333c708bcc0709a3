"""Patroni's configuration for one PostgreSQL node."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from hastack.render.pgbackrest import (
    TARGET_TYPES,
    archive_command,
    pgbackrest_command,
    primary_restore_command,
    restore_command,
)
from hastack.render.yamltext import to_yaml
from hastack.spec import roles
from hastack.spec.plan import Node, StackPlan
from hastack.spec.secrets import Secrets


def _kb(value: int) -> str:
    return f"{value}kB"


def dcs_settings(plan: StackPlan) -> dict[str, Any]:
    """Cluster-wide settings Patroni keeps in etcd. `up` also applies them to a running
    cluster, because Patroni reads `bootstrap.dcs` only when the cluster is first created."""
    spec = plan.spec
    pg = spec.postgres
    return {
        "ttl": spec.patroni.ttl_s,
        "loop_wait": spec.patroni.loop_wait_s,
        "retry_timeout": spec.patroni.retry_timeout_s,
        "maximum_lag_on_failover": spec.patroni.maximum_lag_on_failover_bytes,
        "synchronous_mode": pg.synchronous_mode,
        "synchronous_mode_strict": pg.synchronous_mode_strict,
        "failsafe_mode": pg.failsafe_mode,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            # Parameters replicas must match the primary on live in the DCS (Patroni ignores
            # local values for them).
            "parameters": {
                "max_connections": plan.tuning.max_connections,
                "wal_level": "replica",
                "hot_standby": "on",
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "wal_log_hints": "on",
                "wal_keep_size": f"{pg.wal_keep_size_mb}MB",
                "synchronous_commit": "on",
            },
        },
    }


def standby_settings(plan: StackPlan) -> dict[str, Any]:
    """A standby cluster is born one: `standby_cluster` in the DCS at bootstrap. Only there
    (never in what `up` converges): `hastack promote-standby` removes it from the DCS, and
    that must stay so."""
    standby = plan.standby
    if standby is None:
        return {}
    command = primary_restore_command(plan)
    return {
        "standby_cluster": {
            "host": standby.host,
            "port": standby.port,
            # The standby leader is cloned from the primary by pg_basebackup (the primary's
            # repository is not this stack's); its replicas from it as usual.
            "create_replica_methods": ["basebackup"],
            # When streaming breaks for longer than the primary keeps its WAL, the standby
            # leader goes on from the primary's repository (and streams again once it can).
            **({"restore_command": command} if command else {}),
        }
    }


PINNED_PARAMETERS: dict[str, Any] = {
    # Whoever can change Patroni's dynamic configuration (etcd, the REST API) could otherwise
    # run code as the node's user (a command, a library loaded into every backend) or make
    # an acknowledged commit losable. Patroni lets the local file win over the dynamic
    # configuration, so these hold even then; the spec's `postgres.parameters` may still set
    # them (the spec is root's).
    "archive_mode": "off",
    "archive_command": "",
    "shared_preload_libraries": "",
    "session_preload_libraries": "",
    "local_preload_libraries": "",
    "dynamic_library_path": "$libdir",
    "ssl_passphrase_command": "",
    "fsync": "on",
    "full_page_writes": "on",
    "synchronous_commit": "on",
}


@dataclass(frozen=True)
class ServerFiles:
    """Where one PostgreSQL server finds its socket directory, TLS files and logs, and how it
    archives WAL: the parts of its parameters that differ between targets."""

    socket_dir: str
    tls_cert: str
    tls_key: str
    log_dir: str
    archive_command: str


def postgres_parameters(plan: StackPlan, node: Node) -> dict[str, Any]:
    files = ServerFiles(
        socket_dir=str(node.paths.socket_dir),
        tls_cert=str(node.paths.tls_cert),
        tls_key=str(node.paths.tls_key),
        log_dir=str(node.paths.log_dir),
        archive_command=archive_command(plan, node),
    )
    return server_parameters(plan, files)


def server_parameters(
    plan: StackPlan, files: ServerFiles, target: dict[str, Any] | None = None
) -> dict[str, Any]:
    """postgresql.conf parameters: pinned, derived from the plan's tuning, then `target`'s own
    (a target that logs elsewhere), then the spec's `postgres.parameters`, which win."""
    t = plan.tuning
    params: dict[str, Any] = {
        **PINNED_PARAMETERS,
        "unix_socket_directories": files.socket_dir,
        # TLS with the node's certificate from the stack's CA (it names the node's address
        # and HAProxy's): clients verify the server with `sslmode=verify-full`.
        "ssl": "on",
        "ssl_cert_file": files.tls_cert,
        "ssl_key_file": files.tls_key,
        "ssl_min_protocol_version": "TLSv1.2",
        "password_encryption": "scram-sha-256",
        "shared_buffers": _kb(t.shared_buffers_kb),
        "effective_cache_size": _kb(t.effective_cache_size_kb),
        "work_mem": _kb(t.work_mem_kb),
        "maintenance_work_mem": _kb(t.maintenance_work_mem_kb),
        "wal_buffers": _kb(t.wal_buffers_kb),
        "checkpoint_completion_target": t.checkpoint_completion_target,
        "random_page_cost": t.random_page_cost,
        "logging_collector": "on",
        "log_directory": files.log_dir,
        "log_filename": "postgresql-%a.log",
        "log_truncate_on_rotation": "on",
        "log_rotation_age": "1d",
        "log_rotation_size": 0,
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "log_min_duration_statement": 1000,
    }
    if plan.backup_enabled:
        params.update(
            {
                # Local, like the pinned values: the archive command runs as the node's user,
                # so only the spec (root's) may set it.
                "archive_mode": "on",
                "archive_command": files.archive_command,
                "archive_timeout": f"{plan.spec.backup.archive_timeout_s}s",
            }
        )
    params.update(target or {})
    params.update(plan.spec.postgres.parameters)
    return params


def backup_methods(plan: StackPlan, node: Node) -> dict[str, Any]:
    """Replicas are made (and remade) from the repository when a backup exists; pgBackRest
    exits non-zero before the first one, and Patroni falls back to pg_basebackup."""
    if not plan.backup_enabled:
        return {}
    return {
        "create_replica_methods": ["pgbackrest", "basebackup"],
        "pgbackrest": {
            "command": pgbackrest_command(plan, node, "--delta", "restore"),
            "keep_data": True,
            "no_params": True,
        },
        # A replica too far behind for streaming fetches the segments it misses from the
        # repository.
        "recovery_conf": {"restore_command": restore_command(plan, node)},
    }


RECOVERY_TARGETS = {
    "time": "recovery_target_time",
    "lsn": "recovery_target_lsn",
    "name": "recovery_target_name",
}


@dataclass(frozen=True)
class RestoreBootstrap:
    """A cluster created from the backup repository instead of initdb (`hastack restore
    --target cluster`): what to recover to."""

    kind: str
    """time, lsn, name or latest."""
    value: str | None = None


def restore_bootstrap(plan: StackPlan, node: Node, restore: RestoreBootstrap) -> dict[str, Any]:
    """Patroni's custom bootstrap method that restores the node's data directory from the
    repository and recovers to the target. Patroni uses it only while the DCS holds no
    cluster (the restore clears it first); it opens trust over the socket meanwhile and sets
    the superuser's, replication and rewind passwords afterwards, so passwords rotated since
    the backup still work.

    pgBackRest picks the backup set for the target (never `--set`: a set that ends after a
    time target would restore past it); Patroni replaces the recovery settings pgBackRest
    writes with `recovery_conf` (and removes them once promoted). Archiving stays on: the
    restored cluster goes on archiving into the same stanza, on a new timeline."""
    if restore.kind not in ("latest", *RECOVERY_TARGETS):
        raise ValueError(f"unknown restore target kind {restore.kind!r}")
    options = [f"--type={TARGET_TYPES[restore.kind]}"]
    recovery: dict[str, Any] = {
        "restore_command": restore_command(plan, node),
        "recovery_target_timeline": "latest",
    }
    if restore.kind in RECOVERY_TARGETS:
        options.append(f"--target={restore.value}")
        recovery[RECOVERY_TARGETS[restore.kind]] = restore.value
        recovery["recovery_target_action"] = "promote"
    return {
        "command": pgbackrest_command(plan, node, *map(shlex.quote, options), "restore"),
        "no_params": True,
        "keep_existing_recovery_conf": False,
        "recovery_conf": recovery,
    }


def pg_hba(
    plan: StackPlan, networks: tuple[str, ...] | None = None, operator: str | None = None
) -> list[str]:
    """`networks`: where TCP clients may come from; by default 127.0.0.1, the stack's own
    /24 and, on several hosts, each host's address. `operator`: one more address, the
    operator's seat when the hosts are simulated here (the CLI and a drill's clients)."""
    if networks is None:
        # Every loopback client connects from 127.0.0.1 (HAProxy, PgBouncer, the nodes
        # themselves), so that and the stack's own /24 are the only networks allowed on one
        # machine. On several hosts the peers connect from their hosts' addresses: the
        # other nodes (replication, pg_rewind), HAProxy's, the repository's, the watcher's.
        networks = (
            "127.0.0.1/32",
            plan.spec.network.subnet,
            *(f"{h.address}/32" for h in plan.hosts),
            *((f"{operator}/32",) if operator else ()),
        )
    # The superuser only through the node's Unix socket (a directory only the node's user
    # and root can enter): its password alone never opens the cluster over TCP.
    lines = ["local all all scram-sha-256", f"host all {roles.SUPERUSER} all reject"]
    # hostssl: a client that does not ask for TLS matches no line and is refused.
    tcp = "hostssl" if plan.spec.postgres.require_tls else "host"
    lines += [f"{tcp} replication {roles.REPLICATION} {n} scram-sha-256" for n in networks]
    lines += [f"{tcp} all all {n} scram-sha-256" for n in networks]
    return lines


def render_patroni(
    plan: StackPlan,
    node: Node,
    secrets: Secrets,
    restore: RestoreBootstrap | None = None,
    operator: str | None = None,
) -> str:
    """The node's Patroni config; with `restore`, the cluster it creates (only when the DCS
    holds none) is restored from the repository instead of made by initdb. `operator`: see
    `pg_hba`."""
    # A standby cluster's leader streams from the primary stack's nodes: it trusts that
    # stack's CA too (runtime/tls.py writes the bundle).
    trusted = plan.paths.trusted_ca if plan.standby is not None else plan.paths.ca_cert
    verify = {"sslmode": "verify-full", "sslrootcert": str(trusted)}
    spec = plan.spec
    rest = f"{node.address}:{spec.patroni.rest_port}"
    pg_addr = f"{node.address}:{spec.postgres.port}"
    initdb: list[Any] = [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}]
    if spec.postgres.data_checksums:
        initdb.append("data-checksums")
    config = {
        "scope": plan.name,
        "namespace": plan.etcd_namespace,
        "name": node.name,
        "log": {"level": "INFO"},
        "restapi": {
            "listen": rest,
            "connect_address": rest,
            # HTTPS only, with the node's certificate: the write endpoints' password never
            # crosses a link in clear, and Patroni verifies its peers (leader race) by the
            # stack's CA. Reads need no client certificate (HAProxy's checks, probes).
            "certfile": str(node.paths.tls_cert),
            "keyfile": str(node.paths.tls_key),
            "cafile": str(plan.paths.ca_cert),
            "verify_client": "none",
            "authentication": {
                "username": roles.PATRONI_REST,
                "password": secrets.patroni_rest_password,
            },
        },
        "etcd3": {
            "hosts": [f"{n.address}:{spec.etcd.client_port}" for n in plan.etcd_nodes],
            "protocol": "https",
            "cacert": str(plan.paths.ca_cert),
            "cert": str(node.paths.tls_cert),
            "key": str(node.paths.tls_key),
        },
        "bootstrap": {
            "dcs": {**dcs_settings(plan), **standby_settings(plan)},
            "initdb": initdb,
            **(
                {"method": "pgbackrest", "pgbackrest": restore_bootstrap(plan, node, restore)}
                if restore is not None
                else {}
            ),
        },
        "postgresql": {
            "listen": pg_addr,
            "connect_address": pg_addr,
            "data_dir": str(node.paths.pgdata),
            # Patroni's own superuser connection goes through the socket: pg_hba refuses the
            # superuser over TCP.
            "use_unix_socket": True,
            "bin_dir": str(plan.postgres_bin_dir),
            "pgpass": str(node.paths.pgpass),
            "authentication": {
                "superuser": {"username": roles.SUPERUSER, "password": secrets.postgres_password},
                # Streaming, cloning and pg_rewind over TLS, the leader verified by name.
                "replication": {
                    "username": roles.REPLICATION,
                    "password": secrets.replication_password,
                    **verify,
                },
                "rewind": {
                    "username": roles.REWIND,
                    "password": secrets.rewind_password,
                    **verify,
                },
            },
            # A new replica's pg_basebackup otherwise waits for a spread checkpoint (~90 s
            # measured here); fast makes bring-up and reinit take seconds.
            "basebackup": {"checkpoint": "fast"},
            **backup_methods(plan, node),
            # A node that returns after a fence rejoins with pg_rewind; when rewind fails or
            # cannot run, Patroni wipes the data directory and clones the node again instead
            # of leaving it broken (the node was not the leader: the data lives elsewhere).
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
            "parameters": postgres_parameters(plan, node),
            "pg_hba": pg_hba(plan, operator=operator),
        },
        "watchdog": {"mode": "off"},
        "tags": {
            "nofailover": False,
            "noloadbalance": False,
            "clonefrom": False,
            "nosync": False,
        },
    }
    header = f"# Generated by hastack for stack {plan.name!r}, node {node.name}. Do not edit.\n"
    return header + to_yaml(config)
