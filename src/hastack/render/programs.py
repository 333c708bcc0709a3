"""The processes of a stack, as data: what runs, as whom, in which supervisor group.

Pure: the supervisord renderer turns these into its config, the runtime uses the same list to
start and stop in dependency order.
"""

from __future__ import annotations

from hastack.render.app import app_programs
from hastack.render.monitoring import monitoring_programs
from hastack.render.pgbackrest import standby_environment
from hastack.render.program import Program
from hastack.spec.plan import Node, StackPlan

__all__ = ["Program", "stack_programs"]


def etcd_argv(plan: StackPlan, node: Node) -> tuple[str, ...]:
    etcd = plan.spec.etcd
    peers = ",".join(f"{n.etcd_member}={plan.etcd_peer_url(n)}" for n in plan.etcd_nodes)
    client_url = plan.etcd_url(node)
    peer_url = plan.etcd_peer_url(node)
    cert, key, ca = node.paths.tls_cert, node.paths.tls_key, plan.paths.ca_cert
    # Clients and peers alike must present a certificate from the stack's CA: without one,
    # any local user could rewrite Patroni's configuration (archive_command runs as the
    # node's user) or delete the leader key.
    return (
        str(plan.spec.binaries.etcd),
        f"--name={node.etcd_member}",
        f"--data-dir={node.paths.etcd_data}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={peers}",
        "--initial-cluster-state=new",
        f"--initial-cluster-token=hastack-{plan.name}",
        f"--cert-file={cert}",
        f"--key-file={key}",
        f"--trusted-ca-file={ca}",
        "--client-cert-auth",
        f"--peer-cert-file={cert}",
        f"--peer-key-file={key}",
        f"--peer-trusted-ca-file={ca}",
        "--peer-client-cert-auth",
        f"--heartbeat-interval={etcd.heartbeat_interval_ms}",
        f"--election-timeout={etcd.election_timeout_ms}",
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1h",
        "--logger=zap",
        "--log-outputs=stderr",
        # /metrics (and /health) only, in plain HTTP: Prometheus reads it without a client
        # certificate, which would open the keys too.
        *(
            (f"--listen-metrics-urls={etcd_metrics_url(plan, node)}",)
            if plan.monitoring_enabled
            else ()
        ),
    )


def node_programs(plan: StackPlan, node: Node) -> list[Program]:
    programs = []
    env = {"HOME": str(node.paths.home)}
    if node.etcd_member is not None:
        programs.append(
            Program(
                name=f"{node.name}-etcd",
                group=node.name,
                component="etcd",
                argv=etcd_argv(plan, node),
                user=node.user,
                directory=node.paths.root,
                log_file=plan.paths.program_log(f"{node.name}-etcd"),
                environment=env,
            )
        )
    if node.runs_postgres:
        programs.append(
            Program(
                name=f"{node.name}-patroni",
                group=node.name,
                component="patroni",
                # stdin from /dev/null, not supervisord's pipe: PostgreSQL inherits it, and a
                # backend that loses its postmaster can fall into the interactive "backend>"
                # loop and block forever reading stdin, holding the shared memory that keeps
                # PostgreSQL from restarting in place.
                argv=(
                    "/bin/sh",
                    "-c",
                    'exec "$0" "$@" </dev/null',
                    str(plan.spec.binaries.patroni),
                    str(node.paths.patroni_config),
                ),
                user=node.user,
                directory=node.paths.root,
                log_file=plan.paths.program_log(f"{node.name}-patroni"),
                environment={
                    **env,
                    "PATRONICTL_CONFIG_FILE": str(node.paths.patroni_config),
                    **standby_environment(plan, node),
                },
                # Patroni stops PostgreSQL (fast mode) and releases the leader key on TERM.
                stop_wait_s=60,
            )
        )
    return programs


def service_programs(plan: StackPlan) -> list[Program]:
    paths = plan.paths
    users = plan.service_users
    return [
        Program(
            name="haproxy",
            group="haproxy",
            component="haproxy",
            # -W: master-worker, so a reload (SIGUSR2) never drops the listening sockets.
            argv=(str(plan.spec.binaries.haproxy), "-W", "-db", "-f", str(paths.haproxy_config)),
            user=users["haproxy"],
            directory=paths.service("haproxy"),
            log_file=paths.program_log("haproxy"),
        ),
        Program(
            name="pgbouncer",
            group="pgbouncer",
            component="pgbouncer",
            argv=(str(plan.spec.binaries.pgbouncer), str(paths.pgbouncer_config)),
            user=users["pgbouncer"],
            directory=paths.service("pgbouncer"),
            log_file=paths.program_log("pgbouncer"),
            # SIGINT is PgBouncer's graceful shutdown; SIGTERM exits at once with status 1.
            stop_signal="INT",
            stop_wait_s=15,
        ),
        Program(
            name="redis",
            group="redis",
            component="redis",
            argv=(str(plan.spec.binaries.redis_server), str(paths.redis_config)),
            user=users["redis"],
            directory=paths.service("redis"),
            log_file=paths.program_log("redis"),
        ),
    ]


def backup_programs(plan: StackPlan) -> list[Program]:
    """pgBackRest's TLS servers (one per node, as the node's user: backups read its data
    directory through it; one on the repository host, which keeps the repository) and the
    backup scheduler (the repository host's user)."""
    if not plan.backup_enabled:
        return []
    binary = str(plan.spec.binaries.pgbackrest)
    paths = plan.paths
    programs = [
        Program(
            name=f"{node.name}-pgbackrest",
            group=node.name,
            component="pgbackrest",
            argv=(binary, f"--config={node.paths.pgbackrest_config}", "server"),
            user=node.user,
            directory=node.paths.root,
            log_file=paths.program_log(f"{node.name}-pgbackrest"),
            environment={
                "HOME": str(node.paths.home),
                "PGPASSFILE": str(node.paths.pgbackrest_pgpass),
            },
        )
        for node in plan.postgres_nodes
    ]
    user = plan.service_users["backup"]
    env = {"HOME": str(paths.backup_dir)}
    programs += [
        Program(
            name="backup-repo",
            group="backup",
            component="pgbackrest",
            argv=(binary, f"--config={paths.backup_config}", "server"),
            user=user,
            directory=paths.backup_dir,
            log_file=paths.program_log("backup-repo"),
            environment=env,
        ),
        Program(
            name="backup-scheduler",
            group="backup",
            component="backup",
            argv=(
                str(plan.spec.binaries.hastack_python),
                "-m",
                "hastack.runtime.backup_scheduler",
                str(paths.backup_scheduler_config),
            ),
            user=user,
            directory=paths.backup_dir,
            log_file=paths.program_log("backup-scheduler"),
            environment=env,
            # A backup in progress ends cleanly on TERM (pgBackRest stops and removes it).
            stop_wait_s=30,
        ),
    ]
    return programs


def fencer_programs(plan: StackPlan) -> list[Program]:
    """The watcher, when enabled: it fences, releases and heals. Root: it must stop and kill
    other users' processes (it listens on no port)."""
    if not plan.spec.fencing.enabled:
        return []
    paths = plan.paths
    return [
        Program(
            name="fencer",
            group="fencer",
            component="fencer",
            # The installed hastack (root runs it: never a checkout someone else can write).
            argv=(
                str(plan.spec.binaries.hastack_python),
                "-m",
                "hastack.runtime.watcher",
                str(paths.fencer_config),
            ),
            user="root",
            directory=paths.fencing_dir,
            log_file=paths.program_log("fencer"),
            start_retries=1000,
        )
    ]


def link_programs(plan: StackPlan) -> list[Program]:
    """A standby cluster's simulated long-distance link to its primary (a delaying relay),
    when the spec asks for latency."""
    standby = plan.standby
    if standby is None or not standby.relayed:
        return []
    return [
        Program(
            name="wan-link",
            group="wan-link",
            component="link",
            argv=(
                str(plan.spec.binaries.hastack_python),
                "-m",
                "hastack.runtime.wan_link",
                f"--listen={standby.host}:{standby.port}",
                f"--to={standby.primary_host}:{standby.primary_port}",
                f"--delay-ms={standby.latency_ms}",
            ),
            # A forwarder like HAProxy, and as unprivileged.
            user=plan.service_users["haproxy"],
            directory=plan.paths.service("haproxy"),
            log_file=plan.paths.program_log("wan-link"),
        )
    ]


def etcd_metrics_url(plan: StackPlan, node: Node) -> str:
    return f"http://{node.address}:{plan.spec.monitoring.etcd_metrics_port}"


def stack_programs(plan: StackPlan) -> list[Program]:
    """Every program, in start order: etcd members, Patroni nodes, the services, the app
    instances, then the fencing watcher (it only watches a cluster that is already up)."""
    per_node = [node_programs(plan, n) for n in plan.nodes]
    etcd = [p for progs in per_node for p in progs if p.component == "etcd"]
    patroni = [p for progs in per_node for p in progs if p.component == "patroni"]
    return (
        etcd
        + link_programs(plan)
        + patroni
        + service_programs(plan)
        + backup_programs(plan)
        + app_programs(plan)
        + monitoring_programs(plan)
        + fencer_programs(plan)
    )
