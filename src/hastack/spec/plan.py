"""Derived values: everything computed from the spec, once, in one place.

`derive_plan(spec)` is pure. `hastack plan` prints its result; renderers and the runtime read it
instead of recomputing addresses, users, paths or memory settings.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from hastack.spec.model import DEMO_APP_MODULE, StackSpec
from hastack.spec.placement import BACKUP, MONITORING, SERVICES, Host, node_names, place

SERVICES_HOST = 100
"""Host number of the shared services address inside the stack's /24."""

BACKUP_HOST = 105
"""Host number of the backup repository host (pgBackRest's TLS server, the scheduler)."""

MONITOR_HOST = 106
"""Host number of the monitoring address (Prometheus, Alertmanager, host exporters)."""

APP_HOST_BASE = 110
"""App instance N listens on host APP_HOST_BASE + N (.111, .112, ...)."""

PGBOUNCER_POOLS = 2
"""PgBouncer keeps two pools per user: read-write and read-only."""

ETCD_NAMESPACE = "/hastack/"


@dataclass(frozen=True)
class NodePaths:
    """Files of one node, all under a directory owned by the node's user."""

    root: Path

    @property
    def patroni_config(self) -> Path:
        return self.root / "patroni.yml"

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def pgpass(self) -> Path:
        return self.home / ".pgpass"

    @property
    def pgbackrest_config(self) -> Path:
        """The node's pgBackRest config: its data directory and the repository host."""
        return self.root / "pgbackrest.conf"

    @property
    def pgbackrest_dir(self) -> Path:
        """pgBackRest's spool, lock and log directories for this node (one per node: the
        default lock directory would be shared by every node on one host)."""
        return self.root / "pgbackrest"

    @property
    def pgbackrest_pgpass(self) -> Path:
        """The superuser's password for pgBackRest's local (socket) connection, which the
        node's pgBackRest server opens for backups taken by the repository host."""
        return self.root / "pgbackrest.pgpass"

    @property
    def tls_cert(self) -> Path:
        """The node's certificate (from the stack's CA): its etcd member serves with it and
        authenticates to the other members with it; its Patroni authenticates to etcd."""
        return self.root / "node.pem"

    @property
    def tls_key(self) -> Path:
        return self.root / "node.key"

    @property
    def primary_repo_config(self) -> Path:
        """A standby cluster's node: pgBackRest's config for fetching WAL from the primary
        stack's repository when streaming breaks (PGBACKREST_CONFIG in Patroni's
        environment points at it: the restore_command in the DCS is the same on every node)."""
        return self.root / "pgbackrest-primary.conf"

    @property
    def primary_repo_cert(self) -> Path:
        """The client certificate the primary's repository host admits (from the primary's
        CA, common name `standby`)."""
        return self.root / "primary-repo.pem"

    @property
    def primary_repo_key(self) -> Path:
        return self.root / "primary-repo.key"


@dataclass(frozen=True)
class Node:
    """One machine-like unit: a system user and a loopback address running some components."""

    name: str
    """pg1..pgN for PostgreSQL nodes, dcsN for witness nodes that run only etcd."""
    address: str
    user: str
    runs_postgres: bool
    etcd_member: str | None
    """etcd member name (etcd1..M) when this node runs one."""
    paths: NodePaths


@dataclass(frozen=True)
class AppInstance:
    name: str
    """app1..appN"""
    address: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"


@dataclass(frozen=True)
class StackPaths:
    """The layout of a stack's state directory."""

    state_dir: Path

    @property
    def marker(self) -> Path:
        """Written first when hastack creates the state directory; proves ownership."""
        return self.state_dir / "hastack-stack.json"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def dumps_dir(self) -> Path:
        """Logical dumps (root only: they are encrypted with the repository's passphrase)."""
        return self.state_dir / "dumps"

    @property
    def supervisor_dir(self) -> Path:
        return self.state_dir / "supervisor"

    @property
    def supervisor_config(self) -> Path:
        return self.supervisor_dir / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        return self.supervisor_dir / "supervisor.sock"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.supervisor_dir / "supervisord.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.supervisor_dir / "supervisord.log"

    @property
    def logs_dir(self) -> Path:
        """Every supervised program's output (root only). supervisord, as root, opens these
        files at each spawn: in a directory a service user could write, a symlink planted
        there would make root create or append to any file on the machine."""
        return self.state_dir / "logs"

    def program_log(self, program: str) -> Path:
        return self.logs_dir / f"{program}.log"

    @property
    def fencing_dir(self) -> Path:
        """The fencing watcher's config, decision log and hold file (root only)."""
        return self.state_dir / "fencing"

    @property
    def fencer_config(self) -> Path:
        return self.fencing_dir / "watcher.json"

    @property
    def fencer_log(self) -> Path:
        """One JSON line per decision the watcher takes (or changes)."""
        return self.fencing_dir / "decisions.jsonl"

    @property
    def holds_dir(self) -> Path:
        """One file per hold: while a live holder holds, the watcher stands still."""
        return self.fencing_dir / "holds"

    @property
    def watcher_heartbeat(self) -> Path:
        """Written by the watcher after every completed poll (and every failed one)."""
        return self.fencing_dir / "heartbeat.json"

    @property
    def watcher_state(self) -> Path:
        """What the watcher must remember across its own restarts: fenced nodes waiting to
        return, back-off counters, servers it took out of HAProxy."""
        return self.fencing_dir / "state.json"

    @property
    def watcher_recover_log(self) -> Path:
        """Output of the `hastack up` the watcher runs when supervisord died."""
        return self.fencing_dir / "recover.log"

    @property
    def up_lock(self) -> Path:
        """Taken by `up` for its whole run: two `up`s take turns."""
        return self.state_dir / "up.lock"

    @property
    def drill_lock(self) -> Path:
        """Taken by a drill for its whole run: two drills never overlap on one stack."""
        return self.drills_dir / ".lock"

    @property
    def standby_promoted(self) -> Path:
        """Written by `promote-standby`: this stack was a standby cluster and is the primary
        now, whatever its spec's `standby_cluster` still says (how it was born)."""
        return self.state_dir / "standby-promoted.json"

    @property
    def primary_abandoned(self) -> Path:
        """Written by `promote-standby` before it asks Patroni to promote: from then on the
        nodes' restore_command no longer tries the lost primary's repository (each try
        would hold the promotion up for seconds). Root's, in a directory only root writes."""
        return self.state_dir / "primary-abandoned"

    @property
    def superseded(self) -> Path:
        """Written into a primary's state directory when its standby was promoted (on one
        machine): this stack must not start again as a primary."""
        return self.state_dir / "superseded.json"

    @property
    def applied_spec(self) -> Path:
        """The spec as `up` last applied it (root, 0600): the installed CLI and the watcher
        reach the stack through it even when the checkout it came from is gone."""
        return self.state_dir / "hastack.yaml"

    @property
    def drills_dir(self) -> Path:
        """Drill reports (JSON and HTML), kept for `hastack drill history`."""
        return self.state_dir / "drills"

    @property
    def nodes_dir(self) -> Path:
        return self.state_dir / "nodes"

    def node(self, name: str) -> NodePaths:
        return NodePaths(self.nodes_dir / name)

    def service(self, name: str) -> Path:
        """Directory of a shared service (haproxy, pgbouncer, redis), owned by its user."""
        return self.state_dir / "services" / name

    @property
    def haproxy_config(self) -> Path:
        return self.service("haproxy") / "haproxy.cfg"

    @property
    def haproxy_socket(self) -> Path:
        return self.service("haproxy") / "admin.sock"

    @property
    def pgbouncer_config(self) -> Path:
        return self.service("pgbouncer") / "pgbouncer.ini"

    @property
    def pgbouncer_auth_file(self) -> Path:
        return self.service("pgbouncer") / "userlist.txt"

    @property
    def app_env(self) -> Path:
        """Connection settings and secrets of the app instances (0600, app user)."""
        return self.service("app") / "app.env"

    @property
    def app_config(self) -> Path:
        return self.service("app") / "app.json"

    @property
    def backup_dir(self) -> Path:
        """The repository host's directory (its user only): repository, config, logs."""
        return self.service("backup")

    @property
    def backup_repo(self) -> Path:
        return self.backup_dir / "repo"

    @property
    def backup_config(self) -> Path:
        """The repository host's pgBackRest config (holds the cipher passphrase)."""
        return self.backup_dir / "pgbackrest.conf"

    @property
    def backup_work_dir(self) -> Path:
        """Spool, lock and log directories of the repository host's pgBackRest."""
        return self.backup_dir / "work"

    @property
    def backup_tls_cert(self) -> Path:
        return self.backup_dir / "tls.pem"

    @property
    def backup_tls_key(self) -> Path:
        return self.backup_dir / "tls.key"

    @property
    def backup_scratch_dir(self) -> Path:
        """Scratch restores (verification, point-in-time restores to look at)."""
        return self.backup_dir / "scratch"

    @property
    def backup_restore_config(self) -> Path:
        """pgBackRest's config for restores into the scratch directory."""
        return self.backup_dir / "restore.conf"

    @property
    def scratch_pgdata(self) -> Path:
        return self.backup_scratch_dir / "pgdata"

    @property
    def scratch_socket_dir(self) -> Path:
        return self.backup_scratch_dir / "run"

    @property
    def scratch_marker(self) -> Path:
        """Written by `hastack restore` before it restores into scratch_pgdata: proof the
        directory is hastack's to remove."""
        return self.backup_scratch_dir / "restored-by-hastack.json"

    @property
    def backup_scheduler_config(self) -> Path:
        """What the scheduler needs (JSON): the schedule, pgBackRest's command line."""
        return self.backup_dir / "scheduler-config.json"

    @property
    def backup_scheduler_state(self) -> Path:
        """The scheduler's last runs and verifications (JSON, read by `status`)."""
        return self.backup_dir / "scheduler.json"

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def trusted_ca(self) -> Path:
        """The CAs replication connections trust: the stack's own, and for a standby cluster
        also its primary's (whose nodes it streams from)."""
        return self.tls_dir / "trusted-ca.pem"

    @property
    def ca_cert(self) -> Path:
        """Public: clients trust the stack's HTTPS through it."""
        return self.tls_dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.tls_dir / "ca.key"

    @property
    def client_cert(self) -> Path:
        """hastack's own client certificate (root: the CLI and the watcher) for etcd."""
        return self.tls_dir / "hastack-client.pem"

    @property
    def client_key(self) -> Path:
        return self.tls_dir / "hastack-client.key"

    @property
    def pgbouncer_tls_cert(self) -> Path:
        """PgBouncer's server certificate (the services address), for its TLS clients."""
        return self.service("pgbouncer") / "pgbouncer.pem"

    @property
    def pgbouncer_tls_key(self) -> Path:
        return self.service("pgbouncer") / "pgbouncer.key"

    @property
    def haproxy_pem(self) -> Path:
        return self.service("haproxy") / "site.pem"

    @property
    def haproxy_stats_pem(self) -> Path:
        """The stats page's certificate (the services address, from the stack's CA) and key:
        its login never crosses a link in clear."""
        return self.service("haproxy") / "stats.pem"

    @property
    def haproxy_hold_lua(self) -> Path:
        """The Lua action holding new connections during a failover."""
        return self.service("haproxy") / "hold.lua"

    @property
    def haproxy_server_state(self) -> Path:
        """Server states (drained, maintenance) kept across HAProxy reloads."""
        return self.service("haproxy") / "server-state"

    @property
    def monitor_dir(self) -> Path:
        """Prometheus, Alertmanager and the exporters' files, owned by the monitoring user."""
        return self.service("monitor")

    @property
    def prometheus_config(self) -> Path:
        return self.monitor_dir / "prometheus.yml"

    @property
    def alert_rules(self) -> Path:
        return self.monitor_dir / "alert-rules.yml"

    @property
    def monitor_web_config(self) -> Path:
        """Prometheus' and Alertmanager's HTTPS and password (exporter-toolkit web config)."""
        return self.monitor_dir / "web.yml"

    @property
    def monitor_password_file(self) -> Path:
        """The monitoring password, for Prometheus' own requests (itself, Alertmanager) and
        Alertmanager's to the receiver."""
        return self.monitor_dir / "monitoring.password"

    @property
    def prometheus_data(self) -> Path:
        return self.monitor_dir / "prometheus-data"

    @property
    def alertmanager_config(self) -> Path:
        return self.monitor_dir / "alertmanager.yml"

    @property
    def alertmanager_data(self) -> Path:
        return self.monitor_dir / "alertmanager-data"

    @property
    def monitor_tls_cert(self) -> Path:
        return self.monitor_dir / "monitor.pem"

    @property
    def monitor_tls_key(self) -> Path:
        return self.monitor_dir / "monitor.key"

    @property
    def postgres_exporter_queries(self) -> Path:
        return self.monitor_dir / "postgres-queries.yml"

    @property
    def postgres_exporter_password(self) -> Path:
        """The `monitor` role's password, read by each PostgreSQL exporter."""
        return self.monitor_dir / "postgres.password"

    @property
    def haproxy_stats_password_file(self) -> Path:
        """HAProxy's stats login, with which Prometheus reads its /metrics."""
        return self.monitor_dir / "haproxy-stats.password"

    @property
    def redis_exporter_passwords(self) -> Path:
        """Redis' password for its exporter (a JSON map: Redis URL -> password)."""
        return self.monitor_dir / "redis-passwords.json"

    @property
    def pgbouncer_exporter_config(self) -> Path:
        """PgBouncer's exporter: where to listen, and the `monitor` login to PgBouncer."""
        return self.monitor_dir / "pgbouncer-exporter.yml"

    @property
    def node_exporter_textfiles(self) -> Path:
        """Where hastack (root) writes its own metrics for the node exporter's textfile
        collector: root's directory, outside the monitoring user's (root never writes where
        another user could plant a link)."""
        return self.state_dir / "metrics"

    @property
    def decisions_mirror(self) -> Path:
        """The watcher's latest decisions, copied every few seconds for the dashboard (which
        runs as the monitoring user and cannot read the watcher's own log)."""
        return self.node_exporter_textfiles / "decisions.json"

    @property
    def dashboard_config(self) -> Path:
        """What the dashboard reads and where (web/server.py)."""
        return self.monitor_dir / "dashboard.json"

    @property
    def alerts_log(self) -> Path:
        """Every notification Alertmanager sent to hastack's receiver, one JSON per line."""
        return self.monitor_dir / "alerts.jsonl"

    @property
    def redis_config(self) -> Path:
        return self.service("redis") / "redis.conf"

    @property
    def redis_data(self) -> Path:
        return self.service("redis") / "data"


@dataclass(frozen=True)
class PostgresTuning:
    """postgresql.conf memory and planner settings derived from `postgres.memory_mb`."""

    memory_kb: int
    max_connections: int
    shared_buffers_kb: int
    effective_cache_size_kb: int
    work_mem_kb: int
    maintenance_work_mem_kb: int
    wal_buffers_kb: int
    checkpoint_completion_target: float = 0.9
    random_page_cost: float = 1.1


@dataclass(frozen=True)
class PoolPlan:
    default_pool_size: int
    reserve_pool_size: int
    pools: int
    server_connections_max: int
    """Server connections PgBouncer may open to one PostgreSQL node in the worst case
    (every pool on the primary because no replica is healthy)."""


@dataclass(frozen=True)
class AdmissionPlan:
    """How HAProxy admits HTTP requests to the app instances: the queue lives in HAProxy
    (visible, bounded, timed out), not in an instance's event loop, where it would delay the
    health checks and hide the overload."""

    maxconn_per_instance: int
    """Requests one instance works on at once (HAProxy's per-server maxconn)."""
    max_queue: int
    """Queued requests beyond which new ones get 503 + Retry-After at once."""
    queue_timeout_ms: int
    retry_after_s: int = 1


@dataclass(frozen=True)
class WatcherTimings:
    """When the watcher acts, derived from Patroni's own timings (see runtime/fencing.py).
    One second is added where an etcd lease age is compared: leases count whole seconds."""

    detect_s: float
    """Patroni and PostgreSQL both refusing connections this long: a dead node is fenced."""
    stall_s: float
    """Both silent and the leader's lease not renewed this long (two renewals missed in a
    row: 2 x loop_wait, plus a second each way for the whole-second lease clock): a stalled
    node is fenced. A leader merely busy for up to loop_wait + 1 s misses at most one."""
    demoted_s: float
    """Patroni reports it is no longer primary and its lease is this old: its key released."""
    stale_running_s: float
    """Still primary with a lease this old (loop_wait + 2 x retry_timeout, Patroni's own
    bound): its key released in synchronous mode, unless failsafe mode is active."""
    release_running: bool
    """Synchronous mode: a stale primary cannot acknowledge once its standby is promoted."""
    no_leader_grace_s: float
    """A fenced node returns without a new leader after this long (ttl + 10 s)."""
    poll_interval_s: float
    probe_timeout_s: float


@dataclass(frozen=True)
class StandbyPlan:
    """Where a standby cluster replicates from (derived from the primary stack's spec)."""

    primary_name: str
    primary_state_dir: Path
    primary_host: str
    """The primary's services address: its HAProxy read-write port follows its leader."""
    primary_port: int
    latency_ms: int
    link_port: int
    primary_stanza: str
    primary_backup_host: str | None
    """The primary's repository host (None: the primary takes no backups): WAL from there
    when streaming breaks for longer than the primary keeps it."""
    primary_backup_port: int

    @property
    def primary_paths(self) -> StackPaths:
        return StackPaths(self.primary_state_dir)

    @property
    def relayed(self) -> bool:
        return self.latency_ms > 0

    @property
    def host(self) -> str:
        """What the standby leader connects to. The relay listens on 127.0.0.1: every
        certificate of the primary's nodes names it, so verify-full still holds."""
        return "127.0.0.1" if self.relayed else self.primary_host

    @property
    def port(self) -> int:
        return self.link_port if self.relayed else self.primary_port


@dataclass(frozen=True)
class StackPlan:
    spec: StackSpec
    paths: StackPaths
    nodes: tuple[Node, ...]
    services_address: str
    backup_address: str
    service_users: dict[str, str]
    """Service name (haproxy, pgbouncer, redis) -> system user running it."""
    tuning: PostgresTuning
    pool: PoolPlan
    postgres_bin_dir: Path
    watcher: WatcherTimings
    admission: AdmissionPlan
    app_instances: tuple[AppInstance, ...] = ()
    etcd_namespace: str = ETCD_NAMESPACE
    standby: StandbyPlan | None = None
    """Set when the spec declares `standby_cluster` (and the primary's spec was read)."""
    hosts: tuple[Host, ...] = ()
    """The spec's hosts with the units placed on each; empty for a single-machine stack."""
    monitor_address: str = ""
    """Prometheus, Alertmanager, the dashboard and the host exporters listen here."""
    repo_port: int = 0
    """The repository host's pgBackRest TLS server port: backup.port, or the next one when
    the repository shares a host with a node (whose own server has backup.port)."""
    scratch_port: int = 0
    """The repository host's scratch PostgreSQL (verify, restore tests): postgres.port, or the
    next one when the repository shares a host with a PostgreSQL node."""

    def host_of(self, unit: str) -> Host | None:
        """The host a unit (pg1, app2, services, ...) is placed on; None on one machine."""
        return next((h for h in self.hosts if unit in h.units), None)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def postgres_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.runs_postgres)

    @property
    def etcd_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.etcd_member is not None)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"no node named {name!r} in stack {self.name!r} (nodes: {known})")

    @property
    def all_users(self) -> tuple[str, ...]:
        return tuple(n.user for n in self.nodes) + tuple(self.service_users.values())

    @property
    def app_is_demo(self) -> bool:
        """The demo app runs: hastack applies its migrations."""
        return self.spec.app.command is None and self.spec.app.module == DEMO_APP_MODULE

    @property
    def app_url(self) -> str:
        return f"https://{self.services_address}:{self.spec.http.https_port}"

    @property
    def iptables_chain(self) -> str:
        """The stack's own iptables chain for network-cut drills (at most 28 characters)."""
        return f"HS-{self.name}"

    def leader_key(self) -> str:
        """Patroni's leader key in etcd; its value is the leader's node name."""
        return f"{self.etcd_namespace}{self.name}/leader"

    @property
    def etcd_client_urls(self) -> tuple[str, ...]:
        return tuple(self.etcd_url(n) for n in self.etcd_nodes)

    def etcd_url(self, node: Node) -> str:
        """A member's client URL: HTTPS, and it accepts only clients with a certificate from
        the stack's CA."""
        return f"https://{node.address}:{self.spec.etcd.client_port}"

    def etcd_peer_url(self, node: Node) -> str:
        return f"https://{node.address}:{self.spec.etcd.peer_port}"

    @property
    def stanza(self) -> str:
        """pgBackRest's name for the cluster in the repository."""
        return self.name

    @property
    def backup_enabled(self) -> bool:
        return self.spec.backup.enabled

    @property
    def monitoring_enabled(self) -> bool:
        return self.spec.monitoring.enabled

    @property
    def prometheus_url(self) -> str:
        return f"https://{self.monitor_address}:{self.spec.monitoring.prometheus_port}"

    @property
    def dashboard_url(self) -> str:
        return f"https://{self.monitor_address}:{self.spec.monitoring.dashboard_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"https://{self.monitor_address}:{self.spec.monitoring.alertmanager_port}"

    @property
    def backup_repos(self) -> tuple[int, ...]:
        """pgBackRest's repositories, the local one first (restores look there first)."""
        return self.spec.backup.repos

    @property
    def pgbouncer_databases(self) -> dict[str, int]:
        """PgBouncer database name -> HAProxy port it routes through."""
        db = self.spec.postgres.database
        return {db: self.spec.haproxy.rw_port, f"{db}_ro": self.spec.haproxy.ro_port}


def default_state_dir(name: str) -> Path:
    return Path("/var/lib/hastack") / name


def system_user(stack: str, unit: str) -> str:
    """System user of a node or service; per stack, so two stacks never share a user."""
    return f"hs-{stack}-{unit}"


def host_address(subnet: str, host: int) -> str:
    net = ipaddress.IPv4Network(subnet)
    return str(net.network_address + host)


def derive_tuning(spec: StackSpec, pool: PoolPlan) -> PostgresTuning:
    pg = spec.postgres
    memory_kb = pg.memory_mb * 1024
    max_connections = pg.max_connections or pool.server_connections_max + pg.direct_connections
    shared_buffers_kb = memory_kb // 4
    # PostgreSQL's own rule (1/32 of shared_buffers), capped at the guides' 16 MB.
    wal_buffers_kb = max(64, min(16 * 1024, shared_buffers_kb // 32))
    return PostgresTuning(
        memory_kb=memory_kb,
        max_connections=max_connections,
        shared_buffers_kb=shared_buffers_kb,
        effective_cache_size_kb=memory_kb * 3 // 4,
        # Each connection may use work_mem more than once per query; the /2 keeps headroom.
        work_mem_kb=max(64, (memory_kb - shared_buffers_kb) // max_connections // 2),
        maintenance_work_mem_kb=max(1024, min(2 * 1024 * 1024, memory_kb // 32)),
        wal_buffers_kb=wal_buffers_kb,
    )


def derive_pool(spec: StackSpec) -> PoolPlan:
    pgb = spec.pgbouncer
    # The 10:1 multiplexing guideline: one server connection per ten clients, split over pools.
    size = pgb.default_pool_size or max(1, pgb.max_client_conn // 10 // PGBOUNCER_POOLS)
    return PoolPlan(
        default_pool_size=size,
        reserve_pool_size=pgb.reserve_pool_size,
        pools=PGBOUNCER_POOLS,
        server_connections_max=PGBOUNCER_POOLS * (size + pgb.reserve_pool_size),
    )


def unit_address(spec: StackSpec, hosts: tuple[Host, ...], unit: str, loopback_host: int) -> str:
    """A unit's address: its host's on a multi-host stack, else its own on loopback."""
    host = next((h for h in hosts if unit in h.units), None)
    return host.address if host else host_address(spec.network.subnet, loopback_host)


def derive_nodes(spec: StackSpec, paths: StackPaths, hosts: tuple[Host, ...]) -> tuple[Node, ...]:
    return tuple(
        Node(
            name=name,
            address=unit_address(spec, hosts, name, i),
            user=system_user(spec.name, name),
            runs_postgres=i <= spec.postgres.nodes,
            etcd_member=f"etcd{i}" if i <= spec.etcd.members else None,
            paths=paths.node(name),
        )
        for i, name in enumerate(node_names(spec), start=1)
    )


def derive_app_instances(spec: StackSpec, hosts: tuple[Host, ...]) -> tuple[AppInstance, ...]:
    instances = []
    for i in range(1, spec.app.instances + 1):
        name = f"app{i}"
        host = next((h for h in hosts if name in h.units), None)
        # Instances sharing a host share its address, so each takes the next port.
        before = (
            [u for u in host.units[: host.units.index(name)] if u.startswith("app")] if host else []
        )
        instances.append(
            AppInstance(
                name=name,
                address=unit_address(spec, hosts, name, APP_HOST_BASE + i),
                port=spec.app.port + len(before),
            )
        )
    return tuple(instances)


def derive_admission(spec: StackSpec) -> AdmissionPlan:
    # Twice the pool: the pool stays busy while the next requests parse and authenticate;
    # more would only wait for a connection inside the instance, unseen by HAProxy.
    per_instance = spec.app.max_concurrent_requests or 2 * spec.app.db_pool_size
    max_queue = spec.http.max_queue
    return AdmissionPlan(
        maxconn_per_instance=per_instance,
        max_queue=per_instance * spec.app.instances if max_queue is None else max_queue,
        queue_timeout_ms=spec.http.queue_timeout_ms,
    )


def derive_watcher(spec: StackSpec) -> WatcherTimings:
    p, f = spec.patroni, spec.fencing
    return WatcherTimings(
        detect_s=f.detect_s,
        stall_s=2.0 * p.loop_wait_s + 2.0,
        demoted_s=p.loop_wait_s + 1.0,
        stale_running_s=p.loop_wait_s + 2 * p.retry_timeout_s + 1.0,
        release_running=spec.postgres.synchronous_mode,
        no_leader_grace_s=p.ttl_s + 10.0,
        poll_interval_s=f.poll_interval_ms / 1000,
        probe_timeout_s=f.probe_timeout_ms / 1000,
    )


def derive_standby(spec: StackSpec, primary: StackSpec | None) -> StandbyPlan | None:
    sc = spec.standby_cluster
    if sc is None or primary is None:
        return None
    return StandbyPlan(
        primary_name=primary.name,
        primary_state_dir=primary.state_dir or default_state_dir(primary.name),
        primary_host=host_address(primary.network.subnet, SERVICES_HOST),
        primary_port=primary.haproxy.rw_port,
        latency_ms=sc.latency_ms,
        link_port=sc.link_port,
        primary_stanza=primary.name,
        primary_backup_host=(
            host_address(primary.network.subnet, BACKUP_HOST) if primary.backup.enabled else None
        ),
        primary_backup_port=primary.backup.port,
    )


def _repository_port(spec: StackSpec, hosts: tuple[Host, ...], port: int) -> int:
    """`port`, or the next one when the repository host shares a host with a node."""
    shared = next((h for h in hosts if BACKUP in h.units), None)
    beside_node = shared is not None and any(u in shared.units for u in node_names(spec))
    return port + 1 if beside_node else port


def derive_plan(spec: StackSpec, primary: StackSpec | None = None) -> StackPlan:
    """`primary`: the primary stack's spec when this one is a standby cluster."""
    paths = StackPaths(spec.state_dir or default_state_dir(spec.name))
    hosts = place(spec)
    pool = derive_pool(spec)
    bin_dir = spec.binaries.postgres_bin_dir or Path(
        f"/usr/lib/postgresql/{spec.postgres.version}/bin"
    )
    return StackPlan(
        spec=spec,
        paths=paths,
        nodes=derive_nodes(spec, paths, hosts),
        services_address=unit_address(spec, hosts, SERVICES, SERVICES_HOST),
        backup_address=unit_address(spec, hosts, BACKUP, BACKUP_HOST),
        monitor_address=unit_address(spec, hosts, MONITORING, MONITOR_HOST),
        hosts=hosts,
        repo_port=_repository_port(spec, hosts, spec.backup.port),
        scratch_port=_repository_port(spec, hosts, spec.postgres.port),
        service_users={
            s: system_user(spec.name, s)
            for s in (
                "haproxy",
                "pgbouncer",
                "redis",
                *(("app",) if spec.app.instances else ()),
                *(("backup",) if spec.backup.enabled else ()),
                *(("monitor",) if spec.monitoring.enabled else ()),
            )
        },
        tuning=derive_tuning(spec, pool),
        pool=pool,
        postgres_bin_dir=bin_dir,
        watcher=derive_watcher(spec),
        app_instances=derive_app_instances(spec, hosts),
        admission=derive_admission(spec),
        standby=derive_standby(spec, primary),
    )
