"""Cross-field checks: rules no single field can enforce. Pure functions of the plan."""

from __future__ import annotations

from dataclasses import dataclass

from hastack.spec.errors import SpecIssue
from hastack.spec.model import StackSpec
from hastack.spec.placement import BACKUP, MONITORING, SERVICES, placement_issues
from hastack.spec.plan import StackPlan, default_state_dir

MANAGED_PARAMETERS = frozenset(
    {
        "listen_addresses",
        "port",
        "unix_socket_directories",
        "data_directory",
        "hba_file",
        "ident_file",
        "config_file",
        "hot_standby",
        "wal_level",
        "max_wal_senders",
        "max_replication_slots",
        "wal_log_hints",
    }
)
"""postgresql.conf settings hastack and Patroni own; overriding them would break HA."""

# Rough resident memory of everything but PostgreSQL and Redis data: 3 etcd, 3 Patroni,
# supervisord, HAProxy, PgBouncer (measured idle at ~200 MiB PSS; rounded up for load).
OVERHEAD_MB = 300


@dataclass(frozen=True)
class MachineFacts:
    """What the machine offers; read by the runtime, passed in so the checks stay pure."""

    memory_mb: int
    cpus: int


def check_plan(plan: StackPlan) -> list[SpecIssue]:
    return [
        *_check_etcd(plan),
        *_check_replication(plan),
        *_check_patroni(plan),
        *_check_ports(plan),
        *_check_connections(plan),
        *_check_hold(plan),
        *_check_parameters(plan),
        *_check_fencing(plan),
        *_check_http(plan),
        *placement_issues(plan.spec),
        *_check_host_ports(plan),
    ]


def check_machine(plan: StackPlan, machine: MachineFacts) -> list[SpecIssue]:
    spec = plan.spec
    pg_nodes = len(plan.postgres_nodes)
    needed = pg_nodes * spec.postgres.memory_mb + spec.redis.maxmemory_mb + OVERHEAD_MB
    budget = machine.memory_mb * 9 // 10
    if needed <= budget:
        return []
    fit = max(128, (budget - spec.redis.maxmemory_mb - OVERHEAD_MB) // max(pg_nodes, 1))
    return [
        SpecIssue(
            key="postgres.memory_mb",
            message=(
                f"{pg_nodes} nodes x {spec.postgres.memory_mb} MB + Redis "
                f"{spec.redis.maxmemory_mb} MB + ~{OVERHEAD_MB} MB for the other components "
                f"= {needed} MB, more than 90% of this machine's {machine.memory_mb} MB"
            ),
            fix=f"set postgres.memory_mb to {fit} or less (or fewer nodes)",
        )
    ]


def _check_etcd(plan: StackPlan) -> list[SpecIssue]:
    etcd = plan.spec.etcd
    issues = []
    if etcd.members % 2 == 0:
        issues.append(
            SpecIssue(
                key="etcd.members",
                message=(
                    f"{etcd.members} members tolerate no more failures than "
                    f"{etcd.members - 1}; an even count only adds a way to lose quorum"
                ),
                fix=f"use an odd count: {etcd.members - 1} or {etcd.members + 1}",
            )
        )
    elif etcd.members < 3:
        issues.append(
            SpecIssue(
                key="etcd.members",
                severity="warning",
                message="a single etcd member is a single point of failure (no HA)",
                fix="use 3 members for high availability",
            )
        )
    if etcd.election_timeout_ms < 5 * etcd.heartbeat_interval_ms:
        issues.append(
            SpecIssue(
                key="etcd.election_timeout_ms",
                message=(
                    f"{etcd.election_timeout_ms} ms is less than 5x the heartbeat interval "
                    f"({etcd.heartbeat_interval_ms} ms); members would call needless elections"
                ),
                fix=f"set it to at least {5 * etcd.heartbeat_interval_ms}",
            )
        )
    return issues


def _check_replication(plan: StackPlan) -> list[SpecIssue]:
    pg = plan.spec.postgres
    replicas = pg.nodes - 1
    if pg.synchronous_mode_strict and not pg.synchronous_mode:
        return [
            SpecIssue(
                key="postgres.synchronous_mode_strict",
                message="strict synchronous mode needs synchronous_mode: true",
                fix="set postgres.synchronous_mode: true, or drop synchronous_mode_strict",
            )
        ]
    if pg.synchronous_mode and replicas < 1:
        return [
            SpecIssue(
                key="postgres.synchronous_mode",
                message="synchronous mode needs at least one replica to wait for",
                fix="set postgres.nodes to 3 (or synchronous_mode: false for a single node)",
            )
        ]
    if pg.synchronous_mode_strict and replicas < 2:
        return [
            SpecIssue(
                key="postgres.synchronous_mode_strict",
                message=(
                    "with one replica, strict synchronous mode stops all writes whenever that "
                    "replica is down"
                ),
                fix="set postgres.nodes to 3 so a second replica can take the synchronous role",
            )
        ]
    if pg.synchronous_mode and replicas < 2:
        return [
            SpecIssue(
                key="postgres.nodes",
                severity="warning",
                message=(
                    "with one replica, losing it leaves the primary without a synchronous "
                    "copy (RPO is no longer 0 until it returns)"
                ),
                fix="use 3 nodes so a second replica can take the synchronous role",
            )
        ]
    if not pg.synchronous_mode:
        return [
            SpecIssue(
                key="postgres.synchronous_mode",
                severity="warning",
                message="asynchronous replication: a failover can lose acknowledged writes",
                fix="set postgres.synchronous_mode: true for RPO 0",
            )
        ]
    return []


def _check_patroni(plan: StackPlan) -> list[SpecIssue]:
    p = plan.spec.patroni
    needed = p.loop_wait_s + 2 * p.retry_timeout_s
    if needed <= p.ttl_s:
        return []
    return [
        SpecIssue(
            key="patroni.ttl_s",
            message=(
                f"loop_wait_s + 2 x retry_timeout_s = {needed} s exceeds ttl_s = {p.ttl_s} s; a "
                "primary could lose its lock before it notices the DCS is gone"
            ),
            fix=f"raise patroni.ttl_s to {needed} or lower loop_wait_s / retry_timeout_s",
        )
    ]


def _check_ports(plan: StackPlan) -> list[SpecIssue]:
    spec = plan.spec
    service_ports = {
        "haproxy.rw_port": spec.haproxy.rw_port,
        "haproxy.ro_port": spec.haproxy.ro_port,
        "haproxy.stats_port": spec.haproxy.stats_port,
        "pgbouncer.port": spec.pgbouncer.port,
        "redis.port": spec.redis.port,
    }
    if plan.app_instances:
        service_ports["http.http_port"] = spec.http.http_port
        service_ports["http.https_port"] = spec.http.https_port
    node_ports = {
        "postgres.port": spec.postgres.port,
        "patroni.rest_port": spec.patroni.rest_port,
        "etcd.client_port": spec.etcd.client_port,
        "etcd.peer_port": spec.etcd.peer_port,
    }
    if plan.backup_enabled:
        node_ports["backup.port"] = spec.backup.port
    monitor_ports: dict[str, int] = {}
    if plan.monitoring_enabled:
        m = spec.monitoring
        node_ports["monitoring.postgres_exporter_port"] = m.postgres_exporter_port
        node_ports["monitoring.etcd_metrics_port"] = m.etcd_metrics_port
        monitor_ports = {
            f"monitoring.{key}": getattr(m, key)
            for key in (
                "prometheus_port",
                "alertmanager_port",
                "receiver_port",
                "node_exporter_port",
                "redis_exporter_port",
                "pgbouncer_exporter_port",
                "dashboard_port",
            )
        }
    return (
        _collisions(service_ports, plan.services_address)
        + _collisions(node_ports, "each node address")
        + _collisions(monitor_ports, plan.monitor_address)
    )


def _unit_ports(plan: StackPlan, unit: str) -> dict[str, int]:
    """What a unit listens on (spec key -> port) on its host's address."""
    spec, m = plan.spec, plan.spec.monitoring
    if unit == SERVICES:
        ports = {
            "haproxy.rw_port": spec.haproxy.rw_port,
            "haproxy.ro_port": spec.haproxy.ro_port,
            "haproxy.stats_port": spec.haproxy.stats_port,
            "pgbouncer.port": spec.pgbouncer.port,
            "redis.port": spec.redis.port,
        }
        if plan.app_instances:
            ports |= {
                "http.http_port": spec.http.http_port,
                "http.https_port": spec.http.https_port,
            }
        return ports
    if unit == BACKUP:
        return {"backup.port": plan.repo_port, "postgres.port": plan.scratch_port}
    if unit == MONITORING:
        keys = (
            *("prometheus_port", "alertmanager_port", "receiver_port", "node_exporter_port"),
            *("redis_exporter_port", "pgbouncer_exporter_port", "dashboard_port"),
        )
        return {f"monitoring.{key}": getattr(m, key) for key in keys}
    for app in plan.app_instances:
        if app.name == unit:
            return {"app.port": app.port}
    node = plan.node(unit)
    ports = {}
    if node.etcd_member:
        ports |= {"etcd.client_port": spec.etcd.client_port, "etcd.peer_port": spec.etcd.peer_port}
        if plan.monitoring_enabled:
            ports["monitoring.etcd_metrics_port"] = m.etcd_metrics_port
    if node.runs_postgres:
        ports |= {"postgres.port": spec.postgres.port, "patroni.rest_port": spec.patroni.rest_port}
        if plan.backup_enabled:
            ports["backup.port"] = spec.backup.port
        if plan.monitoring_enabled:
            ports["monitoring.postgres_exporter_port"] = m.postgres_exporter_port
    return ports


def _check_host_ports(plan: StackPlan) -> list[SpecIssue]:
    """Units sharing a host share its address: no two may listen on one port."""
    issues = []
    for i, host in enumerate(plan.hosts):
        owner: dict[int, tuple[str, str]] = {}
        clashes: dict[tuple[str, str], list[str]] = {}
        for unit in host.units:
            for key, port in _unit_ports(plan, unit).items():
                if port not in owner:
                    owner[port] = (unit, key)
                    continue
                other, other_key = owner[port]
                same = key == other_key
                clashes.setdefault((unit, other), []).append(
                    f"{port}" if same else f"{port} ({key}, {other_key})"
                )
        for (unit, other), ports in clashes.items():
            issues.append(
                SpecIssue(
                    key=f"hosts.{i}.runs",
                    message=(
                        f"on host {host.name!r} ({host.address}), {unit} and {other} would both "
                        f"listen on port {', '.join(ports)}"
                    ),
                    fix=(
                        f"place {unit} on another host: every unit listens on its host's "
                        "address, so a host runs one node (list as many hosts as nodes)"
                        if unit in {n.name for n in plan.nodes}
                        else f"place {unit} on another host, or give it another port"
                    ),
                    related=(f"hosts.{i}", "hosts"),
                )
            )
    return issues


def _collisions(ports: dict[str, int], where: str) -> list[SpecIssue]:
    seen: dict[int, str] = {}
    issues = []
    for key, port in ports.items():
        if port in seen:
            issues.append(
                SpecIssue(
                    key=key,
                    message=f"port {port} is also {seen[port]} on {where}",
                    fix=f"give {key} or {seen[port]} a port no other component uses",
                    related=(seen[port],),
                )
            )
        else:
            seen[port] = key
    return issues


def _check_connections(plan: StackPlan) -> list[SpecIssue]:
    pg = plan.spec.postgres
    # superuser_reserved_connections (3) + Patroni's own connections, with a margin.
    needed = plan.pool.server_connections_max + 10
    if pg.max_connections is None or pg.max_connections >= needed:
        return []
    return [
        SpecIssue(
            key="postgres.max_connections",
            message=(
                f"{pg.max_connections} is below what PgBouncer may open to one node "
                f"({plan.pool.pools} pools x ({plan.pool.default_pool_size} + "
                f"{plan.pool.reserve_pool_size} reserve) = {plan.pool.server_connections_max}) "
                "plus 10 for superusers and Patroni"
            ),
            fix=f"set it to at least {needed}, or lower pgbouncer.default_pool_size",
        )
    ]


def _check_hold(plan: StackPlan) -> list[SpecIssue]:
    hold = plan.spec.haproxy.hold_new_connections_s
    timeout = plan.spec.pgbouncer.server_connect_timeout_s
    if hold == 0 or timeout > hold:
        return []
    # PgBouncer would give up on a login HAProxy still holds, then fail its clients fast
    # ("server login has been failing") for the rest of the failover.
    return [
        SpecIssue(
            key="pgbouncer.server_connect_timeout_s",
            message=(
                f"{timeout} s is not longer than haproxy.hold_new_connections_s ({hold:g} s): "
                "PgBouncer would abandon logins HAProxy holds during a failover"
            ),
            fix=f"raise it to at least {int(hold) + 1}, or lower haproxy.hold_new_connections_s",
        )
    ]


def _check_parameters(plan: StackPlan) -> list[SpecIssue]:
    return [
        SpecIssue(
            key=f"postgres.parameters.{name}",
            message="is managed by hastack and Patroni; overriding it would break the cluster",
            fix="remove it; see `hastack plan` for the value hastack uses",
        )
        for name in sorted(plan.spec.postgres.parameters)
        if name in MANAGED_PARAMETERS
    ]


def _check_fencing(plan: StackPlan) -> list[SpecIssue]:
    f = plan.spec.fencing
    if not f.enabled:
        return []
    issues = []
    if f.detect_s * 1000 < 2 * f.poll_interval_ms:
        issues.append(
            SpecIssue(
                key="fencing.detect_s",
                message=(
                    f"{f.detect_s} s is less than two polls ({f.poll_interval_ms} ms each): one "
                    "lost probe would fence a healthy primary"
                ),
                fix=f"set it to at least {2 * f.poll_interval_ms / 1000:g}",
            )
        )
    if f.probe_timeout_ms > f.detect_s * 1000:
        issues.append(
            SpecIssue(
                key="fencing.probe_timeout_ms",
                message=f"{f.probe_timeout_ms} ms is longer than detect_s ({f.detect_s} s)",
                fix="use a probe timeout shorter than detect_s",
            )
        )
    return issues


def _check_http(plan: StackPlan) -> list[SpecIssue]:
    tls = plan.spec.http.tls
    if (tls.cert is None) != (tls.key is None):
        return [
            SpecIssue(
                key="http.tls.cert" if tls.cert is None else "http.tls.key",
                message="a certificate needs its key, and a key its certificate",
                fix="set both http.tls.cert and http.tls.key, or neither (hastack makes one)",
                related=("http.tls.key", "http.tls.cert"),
            )
        ]
    return []


def check_standby(spec: StackSpec, primary: StackSpec) -> list[SpecIssue]:
    """A standby cluster and its primary: two stacks of one database, apart everywhere else."""
    key = "standby_cluster.primary"
    sc_primary = spec.standby_cluster.primary if spec.standby_cluster else "PRIMARY_SPEC"
    issues: list[SpecIssue] = []

    def issue(message: str, fix: str, at: str = key) -> None:
        issues.append(SpecIssue(key=at, message=message, fix=fix))

    if primary.standby_cluster is not None:
        # Fine once that stack was promoted (its spec keeps how it was born): `up` finds out,
        # since a standby's read-write port answers nothing.
        issues.append(
            SpecIssue(
                key=key,
                message=f"stack {primary.name!r} was born a standby cluster: this one can "
                "stream from it only once it is promoted (no cascading standby clusters)",
                fix=f"hastack -c {sc_primary} promote-standby, if that is not done yet",
                severity="warning",
            )
        )
    if primary.name == spec.name:
        issue(
            f"the primary stack has this stack's name ({spec.name!r})",
            f"give the standby cluster its own name (for example {(spec.name[:12] + '-dr')!r})",
            "name",
        )
    if primary.network.subnet == spec.network.subnet:
        issue(
            f"the primary stack uses this stack's subnet ({spec.network.subnet})",
            "give the standby cluster its own network.subnet (a second region)",
            "network.subnet",
        )
    own_state = spec.state_dir or default_state_dir(spec.name)
    if (primary.state_dir or default_state_dir(primary.name)) == own_state:
        issue("the primary stack uses this stack's state directory", "set another state_dir")
    if primary.postgres.node_prefix == spec.postgres.node_prefix:
        issue(
            f"this stack's nodes would be named like the primary's ({spec.postgres.node_prefix}1, "
            "...): its leader streams from the primary under its name, and the primary's "
            "synchronous replication picks its standby by that name",
            "set postgres.node_prefix: dr (any other than the primary's)",
            "postgres.node_prefix",
        )
    if primary.postgres.version != spec.postgres.version:
        issue(
            f"the primary runs PostgreSQL {primary.postgres.version}, this stack "
            f"{spec.postgres.version}: a physical replica needs the same major version",
            f"set postgres.version: {primary.postgres.version}",
            "postgres.version",
        )
    if primary.postgres.database != spec.postgres.database:
        issue(
            f"the primary's database is {primary.postgres.database!r}, this stack's "
            f"{spec.postgres.database!r}: a standby cluster holds the primary's databases",
            f"set postgres.database: {primary.postgres.database}",
            "postgres.database",
        )
    return issues
