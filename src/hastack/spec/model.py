"""The stack model: what `hastack.yaml` may say, with every default.

This module is the only place defaults live. Every model is frozen and forbids unknown keys, so
a typo is an error (with a "did you mean") rather than a silently ignored setting.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Port = Annotated[int, Field(ge=1024, le=65535)]
"""A TCP port. Below 1024 needs root to bind, and no server of the stack runs as root."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class NetworkSpec(_Model):
    """Where the stack lives on loopback."""

    subnet: str = Field(
        default="127.0.10.0/24",
        description=(
            "A /24 inside 127.0.0.0/8 owned by this stack. Node N listens on host .N, the "
            "shared services (HAProxy, PgBouncer, Redis) on host .100."
        ),
    )

    @field_validator("subnet")
    @classmethod
    def _loopback_24(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 network ({exc}); write it like 127.0.10.0/24") from None
        if net.prefixlen != 24:
            raise ValueError("must be a /24, for example 127.0.10.0/24")
        if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError("must be inside 127.0.0.0/8 (loopback), for example 127.0.10.0/24")
        if ipaddress.IPv4Address("127.0.0.1") in net:
            raise ValueError(
                "must not contain 127.0.0.1, which every loopback client uses as its source "
                "address; pick another, for example 127.0.10.0/24"
            )
        return value


class EtcdSpec(_Model):
    """The etcd cluster Patroni keeps its leader lock in (the DCS)."""

    members: int = Field(
        default=3,
        ge=1,
        le=7,
        description=(
            "Number of etcd members. Member N runs on PostgreSQL node N; members beyond the "
            "node count run on their own witness node. Odd and >= 3 for high availability."
        ),
    )
    client_port: Port = Field(default=2379, description="Client port on each member address.")
    peer_port: Port = Field(default=2380, description="Raft peer port on each member address.")
    heartbeat_interval_ms: int = Field(default=100, ge=10, le=5000)
    election_timeout_ms: int = Field(
        default=1000, ge=100, le=50000, description="At least 5x the heartbeat interval."
    )


class PostgresSpec(_Model):
    """The PostgreSQL nodes Patroni runs."""

    version: Literal[15, 16, 17] = Field(default=15, description="PostgreSQL major version.")
    nodes: int = Field(default=3, ge=1, le=9, description="Number of PostgreSQL nodes.")
    node_prefix: str = Field(
        default="pg",
        pattern=r"^[a-z]{1,4}$",
        description=(
            "Node names are this and a number (pg1, pg2, ...): Patroni's member names, which "
            "replicas stream under. A standby cluster needs its own (for example `dr`)."
        ),
    )
    port: Port = Field(default=5432, description="Port on each node address.")
    database: str = Field(
        default="app",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The application database, owned by the app_owner role.",
    )
    memory_mb: int = Field(
        default=256,
        ge=128,
        description=(
            "Memory given to each node; shared_buffers is 25%, effective_cache_size 75%, "
            "work_mem and maintenance_work_mem derive from it (see `hastack plan`)."
        ),
    )
    max_connections: int | None = Field(
        default=None,
        ge=20,
        description="Default: derived from the PgBouncer pool sizes plus direct headroom.",
    )
    direct_connections: int = Field(
        default=40,
        ge=10,
        description="Connections for clients that bypass PgBouncer (added to max_connections).",
    )
    synchronous_mode: bool = Field(
        default=True,
        description="Commits wait for a synchronous standby: acknowledged writes survive failover.",
    )
    synchronous_mode_strict: bool = Field(
        default=False,
        description="Stop writes rather than run without a synchronous standby.",
    )
    failsafe_mode: bool = Field(
        default=True,
        description="Keep the primary writable while etcd has no quorum but all Patroni see it.",
    )
    data_checksums: bool = True
    require_tls: bool = Field(
        default=True,
        description=(
            "Refuse clients that do not use TLS (pg_hba `hostssl`, PgBouncer "
            "`client_tls_sslmode = require`). Turn off only to measure what TLS costs with "
            "`hastack bench pg`; `hastack audit` fails while it is off."
        ),
    )
    wal_keep_size_mb: int = Field(default=256, ge=0)

    @field_validator("node_prefix")
    @classmethod
    def _not_witness(cls, value: str) -> str:
        if value == "dcs":
            raise ValueError("dcs names the witness nodes (etcd only); pick another, like dr")
        return value

    parameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra postgresql.conf parameters; they override derived values.",
    )


class PatroniSpec(_Model):
    """Patroni's HA timings and REST API."""

    ttl_s: int = Field(default=20, ge=20, description="Leader lock TTL; Patroni's floor is 20.")
    loop_wait_s: int = Field(default=2, ge=1, description="Seconds between HA loop runs.")
    retry_timeout_s: int = Field(
        default=5, ge=3, description="How long DCS and PostgreSQL operations are retried."
    )
    maximum_lag_on_failover_bytes: int = Field(default=1048576, ge=0)
    rest_port: Port = Field(default=8008, description="REST API port on each node address.")


class HealthCheckSpec(_Model):
    """HAProxy's checks of Patroni's REST API (fast, measured on a 2-core machine).

    A dead or stopped PostgreSQL is taken out at its first refused connection (layer-4
    observation), whatever `fall` says; `fall` only decides how long a server whose Patroni is
    silent keeps its sessions. 16 x fastinter = 4 s rides out a Patroni restart (~2.9 s
    measured) with no client error, where fall 2 cut every session for ~3 s."""

    inter_ms: int = Field(default=1000, ge=100)
    fastinter_ms: int = Field(default=250, ge=50)
    downinter_ms: int = Field(default=250, ge=50)
    fall: int = Field(default=16, ge=1)
    rise: int = Field(default=1, ge=1)


class HAProxySpec(_Model):
    """HAProxy in front of PostgreSQL: a read-write port and a read-only port."""

    rw_port: Port = Field(default=5000, description="Routes to the current primary.")
    ro_port: Port = Field(
        default=5001, description="Routes to healthy replicas; the primary when none is."
    )
    stats_port: Port = Field(default=7000, description="Stats page and Prometheus /metrics.")
    replica_max_lag_bytes: int = Field(
        default=16777216,
        ge=0,
        description="A replica further behind than this leaves the read-only pool.",
    )
    timeout_connect_ms: int = Field(default=1000, ge=100)
    timeout_check_ms: int = Field(default=1000, ge=100)
    timeout_client_s: int = Field(default=1800, ge=1)
    timeout_server_s: int = Field(default=1800, ge=1)
    hold_new_connections_s: float = Field(
        default=10,
        ge=0,
        le=60,
        description=(
            "A new connection arriving while no server can take it (during a failover) waits "
            "up to this long for one instead of being closed at once; 0 closes it at once."
        ),
    )
    check: HealthCheckSpec = Field(default_factory=HealthCheckSpec)


class PgBouncerSpec(_Model):
    """PgBouncer pooling in front of the HAProxy ports."""

    port: Port = 6432
    pool_mode: Literal["transaction", "session"] = "transaction"
    max_client_conn: int = Field(default=500, ge=10)
    default_pool_size: int | None = Field(
        default=None,
        ge=1,
        description="Server connections per pool. Default: max_client_conn / 10 / 2 pools.",
    )
    reserve_pool_size: int = Field(default=5, ge=0)
    server_login_retry_ms: int = Field(
        default=250,
        ge=0,
        description=(
            "Wait after a failed server login. Low, so a failover is not stretched: with the "
            "default 15 s (and still with 1 s) clients waited ~0.8 s longer than needed."
        ),
    )
    server_connect_timeout_s: int = Field(
        default=15,
        ge=1,
        description=(
            "Connect and login to a server through HAProxy; longer than "
            "haproxy.hold_new_connections_s, so a login held during a failover succeeds."
        ),
    )
    query_wait_timeout_s: int = Field(default=30, ge=1)


class RedisSpec(_Model):
    """Redis: cache, sessions and rate-limit state."""

    port: Port = 6379
    maxmemory_mb: int = Field(default=64, ge=8)
    maxmemory_policy: Literal[
        "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "noeviction"
    ] = "allkeys-lru"
    appendonly: bool = True


class FencingSpec(_Model):
    """The fencing watcher: fence a dead primary's node and release its leader lock early.

    Without it an unplanned failover waits for the leader key's TTL (20-24 s measured); with it
    the write gap was 1.3-2.7 s. It acts only when the primary's Patroni REST API *and* its
    PostgreSQL both stop answering, and only after confirming every process of that node is
    gone."""

    enabled: bool = Field(default=True, description="Run the watcher (local target).")
    detect_s: float = Field(
        default=1.0,
        ge=0.5,
        le=10.0,
        description="How long both probes must fail before the node is fenced.",
    )
    poll_interval_ms: int = Field(default=250, ge=50, le=2000)
    probe_timeout_ms: int = Field(default=500, ge=100, le=5000)
    command: str | None = Field(
        default=None,
        description=(
            "On separate hosts (target systemd), how to fence a dead primary's host: a "
            "command run by /bin/sh with HASTACK_FENCE_NODE (pg1, ...), HASTACK_FENCE_HOST "
            "and HASTACK_FENCE_ADDRESS set, that powers the host off or cuts it from the "
            "network (a cloud API, IPMI) and exits 0 only once it has. Unset: no early "
            "fencing there; failover waits for the leader key's TTL. Not used on one machine, "
            "where the watcher stops the node's processes itself."
        ),
    )
    unfence_command: str | None = Field(
        default=None,
        description=(
            "With `command`: how to bring a fenced host back (power it on), run the same way "
            "once another node holds the leader key, so the old primary returns as a replica "
            "by itself. Unset: a fenced host stays fenced until you bring it back."
        ),
    )


RateString = Annotated[
    str,
    Field(
        pattern=r"^[1-9][0-9]*(/| per )[0-9]*\s*(second|minute|hour|day)s?$",
        description='A rate like "100/minute" or "5 per 10 seconds" (the limits library form).',
    ),
]


class RateLimitTiers(_Model):
    """App-side limits where identity matters; everyone is limited at the edge (HAProxy)."""

    authenticated: RateString = Field(
        default="1000/second", description="Per API token or session user."
    )
    heavy_write: RateString = Field(default="20/hour", description="Per user, on bulk writes.")
    login: RateString = Field(default="5/minute", description="Per user name, on /login.")


DEMO_APP_MODULE = "hastack.demo.app:build"


class TracingSpec(_Model):
    """OpenTelemetry traces from the app instances, sent over OTLP/HTTP to a collector you
    run (Jaeger, Tempo, an OpenTelemetry Collector). Off until an endpoint is given."""

    otlp_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description=(
            "Where spans go, e.g. http://127.0.0.1:4318/v1/traces (OTLP over HTTP, "
            "protobuf). Given to each instance as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."
        ),
    )
    sample_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Share of new traces kept (parent-based: a request that arrives inside a sampled "
            "trace, `traceparent` header, is always kept)."
        ),
    )
    service_name: str = Field(
        default="hastack-app", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="service.name."
    )


APP_SHUTDOWN_TASKS_S = 15
"""An app instance's shutdown after its requests: background tasks, then the pools."""


class AppSpec(_Model):
    """The app instances behind HAProxy's HTTP tier (the demo work-order app by default)."""

    instances: int = Field(
        default=2,
        ge=0,
        le=16,
        description=(
            "How many instances (0: no HTTP tier). On 2 cores, with HAProxy and a load "
            "generator on the box, more than 2 does not add throughput."
        ),
    )
    module: str = Field(
        default=DEMO_APP_MODULE,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="An ASGI app as module:attribute, served by uvicorn.",
    )
    factory: bool = Field(default=True, description="`module` names a function returning the app.")
    command: str | None = Field(
        default=None,
        description=(
            "Any HTTP server instead of an ASGI module, e.g. `node server.js`; it gets HOST and "
            "PORT and the connection settings in its environment."
        ),
    )
    port: Port = Field(default=8000, description="Each instance listens on its own address.")
    health_path: str = Field(default="/health/ready", pattern=r"^/")
    tenant_header: str = Field(default="X-Site-ID", pattern=r"^[A-Za-z0-9-]+$")
    rate_limits: RateLimitTiers = Field(default_factory=RateLimitTiers)
    replica_max_lag_s: float = Field(default=1.0, gt=0)
    read_your_writes_s: float = Field(default=5.0, ge=0)
    max_body_kb: int = Field(default=1024, ge=1)
    access_log: bool = True
    db_pool_size: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Database connections per pool (read-write, read-only) in each instance.",
    )
    max_concurrent_requests: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description=(
            "Requests HAProxy lets one instance work on at once (its per-server maxconn); "
            "the rest wait in HAProxy's queue, where they are counted, bounded and timed out. "
            "Default: 2 x db_pool_size."
        ),
    )
    graceful_timeout_s: int = Field(
        default=10, ge=1, description="How long an instance may finish requests when stopped."
    )
    tracing: TracingSpec = Field(default_factory=TracingSpec)

    @property
    def stop_wait_s(self) -> int:
        """How long a stopped instance is given before it is killed: its requests' grace,
        then its background tasks' end (a query's cancel request answered, up to 10 s:
        app/tasks.py) and the pools closed. A kill cuts that cancel off, and PgBouncer 1.18
        dies of a cut-off cancel."""
        return self.graceful_timeout_s + APP_SHUTDOWN_TASKS_S


class EdgeRateLimitSpec(_Model):
    """The per-client limit in HAProxy's stick table: first line of defence, ~free."""

    requests: int = Field(default=100, ge=0, description="0 turns it off.")
    period_s: int = Field(default=10, ge=1)


HostName = Annotated[
    str,
    Field(
        # A DNS name (a leading "*." for a wildcard) or an IPv4 address: it goes into the
        # certificate and into HAProxy's config, where anything else could add directives.
        pattern=r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
        r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        max_length=253,
    ),
]


class TlsSpec(_Model):
    cert: Path | None = Field(
        default=None, description="Your certificate (PEM); default: generated."
    )
    key: Path | None = Field(default=None, description="Its private key (PEM).")
    hostnames: list[HostName] = Field(
        default_factory=lambda: ["localhost"],
        description="Names the generated certificate covers (plus the services address).",
    )


class HttpCheckSpec(_Model):
    """Checks of each instance's readiness endpoint: out after 2 failures, back after 2."""

    inter_ms: int = Field(default=1000, ge=100)
    fall: int = Field(default=2, ge=1)
    rise: int = Field(default=2, ge=1)


class HttpSpec(_Model):
    """HAProxy's HTTP tier in front of the app instances."""

    http_port: Port = Field(default=8080, description="Redirects to HTTPS.")
    https_port: Port = 8443
    balance: Literal["leastconn", "roundrobin"] = "leastconn"
    sticky_sessions: bool = Field(
        default=False, description="Cookie stickiness (sessions live in Redis either way)."
    )
    edge_rate_limit: EdgeRateLimitSpec = Field(default_factory=EdgeRateLimitSpec)
    tls: TlsSpec = Field(default_factory=TlsSpec)
    retries: int = Field(default=2, ge=0, le=5)
    timeout_client_s: int = Field(default=30, ge=1)
    timeout_server_s: int = Field(default=30, ge=1)
    timeout_http_request_s: int = Field(default=10, ge=1)
    timeout_keepalive_s: int = Field(default=30, ge=1)
    queue_timeout_ms: int = Field(
        default=2000,
        ge=100,
        description="How long a request may wait in HAProxy's queue before a 503 + Retry-After.",
    )
    max_queue: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Requests waiting in HAProxy's queue beyond which new ones are answered 503 + "
            "Retry-After at once. Default: every instance's max_concurrent_requests summed "
            "(a queued request waits about one round of the admitted ones)."
        ),
    )
    check: HttpCheckSpec = Field(default_factory=HttpCheckSpec)


class BackupScheduleSpec(_Model):
    """When the scheduler takes each type of backup (it acts through the repository host,
    and pgBackRest backs up whichever node is the leader then: a failover moves it)."""

    full_every_h: float = Field(default=168, gt=0, description="A full backup this often.")
    diff_every_h: float = Field(
        default=24, gt=0, description="A differential (changes since the last full) this often."
    )
    incr_every_h: float = Field(
        default=1, gt=0, description="An incremental (changes since the last backup) this often."
    )
    verify_after_full: bool = Field(
        default=True,
        description=(
            "Verify each new full backup (restore into the scratch instance, pg_amcheck "
            "--heapallindexed, row counts; `hastack verify-backup`)."
        ),
    )


S3_REPO = 2
"""pgBackRest's number for the S3 repository (backup.s3); the local one is 1."""


class S3RepoSpec(_Model):
    """A second, off-site repository in any S3-compatible object store (pgBackRest's repo2):
    every WAL segment is archived to both, and the scheduler takes its own chain of backups
    there on the same schedule. Encrypted with its own generated passphrase."""

    endpoint: str = Field(
        description=(
            "The S3 endpoint's host name, without scheme or port: s3.eu-central-1.amazonaws"
            ".com, s3.fr-par.scw.cloud, minio.example.internal."
        ),
    )
    port: int = Field(default=443, ge=1, le=65535, description="The endpoint's HTTPS port.")
    bucket: str = Field(description="An existing bucket (hastack does not create it).")
    region: str = Field(
        default="us-east-1",
        description="The bucket's region (MinIO and most others accept us-east-1).",
    )
    path: str = Field(
        default="/hastack",
        description="Where in the bucket, absolute; the stanza (the stack's name) goes below.",
    )
    uri_style: Literal["host", "path"] = Field(
        default="host",
        description="host: BUCKET.ENDPOINT (AWS); path: ENDPOINT/BUCKET (MinIO, Ceph, Garage).",
    )
    verify_tls: bool = Field(
        default=True, description="Verify the endpoint's certificate (off only for a test rig)."
    )
    ca_file: Path | None = Field(
        default=None,
        description="A CA bundle (absolute) for an endpoint with a private CA.",
    )
    credentials_file: Path = Field(
        description=(
            "Absolute path of a file only root can write, with two lines: `key=ACCESS_KEY` "
            "and `secret=SECRET_KEY`. Read at each `up`; never copied into the spec."
        ),
    )
    retention_full: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Full backups kept in S3. Default: backup.retention_full.",
    )

    @field_validator("endpoint")
    @classmethod
    def _host(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", value):
            raise ValueError(
                "must be a host name only (no https://, no :port, no path), for example "
                "s3.eu-central-1.amazonaws.com; the port goes in `port`"
            )
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value):
            raise ValueError(
                "must be an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens"
            )
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "//" in value or ".." in value:
            raise ValueError("must be an absolute path inside the bucket, for example /hastack")
        return value.rstrip("/") or "/"

    @field_validator("ca_file", "credentials_file")
    @classmethod
    def _absolute_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path, for example /etc/hastack/s3.cred")
        return value


class BackupSpec(_Model):
    """pgBackRest: a repository host (its own user and address) keeps the encrypted
    repository; every node archives its WAL there through pgBackRest's TLS protocol."""

    enabled: bool = Field(
        default=True,
        description="WAL archiving, scheduled backups and restores. Off: replication only.",
    )
    port: Port = Field(
        default=8432,
        description=(
            "pgBackRest's TLS server port, on the repository host (.105) and on each node."
        ),
    )
    archive_timeout_s: int = Field(
        default=10,
        ge=1,
        le=3600,
        description=(
            "PostgreSQL switches to a new WAL segment (and archives it) at least this often "
            "while writes flow: the most a whole-cluster loss can lose, plus the push time."
        ),
    )
    retention_full: int = Field(default=2, ge=1, le=100, description="Full backups kept.")
    retention_diff: int = Field(
        default=7, ge=1, le=100, description="Differential backups kept (per full)."
    )
    compress_level: int = Field(
        default=3, ge=1, le=19, description="zstd level of the repository's files."
    )
    process_max: int = Field(
        default=2, ge=1, le=32, description="Parallel processes for backup and restore."
    )
    schedule: BackupScheduleSpec = Field(default_factory=BackupScheduleSpec)
    s3: S3RepoSpec | None = Field(
        default=None,
        description="A second repository in S3-compatible object storage (off-site copies).",
    )
    dumps_kept: int = Field(
        default=7,
        ge=1,
        le=1000,
        description="Logical dumps (`hastack dump`) kept; older ones are removed after a dump.",
    )

    @property
    def repos(self) -> tuple[int, ...]:
        """pgBackRest's repositories: 1 (local), then S3_REPO when `s3` is set."""
        return (1, S3_REPO) if self.s3 is not None else (1,)


class MonitoringSpec(_Model):
    """Prometheus, Alertmanager and the exporters, supervised in the stack on its own address
    (.106 of the subnet; each PostgreSQL exporter and etcd's metrics on its node's address).
    Prometheus and Alertmanager serve HTTPS with a generated password
    (`hastack secrets show monitoring_password`, user `hastack`)."""

    enabled: bool = Field(default=True, description="Run the monitoring stack.")
    scrape_interval_s: int = Field(
        default=5,
        ge=2,
        le=15,
        description=(
            "How often every target is scraped and the rules evaluated; the alert rules' "
            "`for:` durations are written for 5 s."
        ),
    )
    retention: str = Field(
        default="15d",
        pattern=r"^[1-9][0-9]*(h|d|w)$",
        description="How long Prometheus keeps samples: a number and h, d or w (15d).",
    )
    prometheus_port: Port = 9090
    alertmanager_port: Port = 9093
    receiver_port: Port = Field(
        default=9095, description="hastack's alert receiver (Alertmanager's webhook target)."
    )
    node_exporter_port: Port = 9100
    redis_exporter_port: Port = 9121
    pgbouncer_exporter_port: Port = 9127
    postgres_exporter_port: Port = Field(
        default=9187, description="Each node's PostgreSQL exporter, on the node's address."
    )
    etcd_metrics_port: Port = Field(
        default=2381, description="etcd's plain-HTTP /metrics listener, on each node's address."
    )
    dashboard_port: Port = Field(
        default=9443,
        description=(
            "hastack's live web dashboard (HTTPS, the monitoring login), on the monitoring address."
        ),
    )


class StandbyClusterSpec(_Model):
    """This stack is a standby cluster in a second region: Patroni's standby leader streams
    from the primary stack (through its HAProxy read-write port, so a failover there is
    followed), the other nodes cascade from it, and nothing is written here until
    `hastack promote-standby` makes it the primary cluster."""

    primary: Path = Field(
        description=(
            "The primary stack's hastack.yaml (absolute): its addresses, and its state "
            "directory, whose role passwords this stack takes and whose CA it trusts."
        ),
    )
    latency_ms: int = Field(
        default=0,
        ge=0,
        le=2000,
        description=(
            "Simulated one-way delay on the link to the primary (a relay on 127.0.0.1 adds "
            "it each way), to rehearse a distant region on one machine. 0: direct link."
        ),
    )
    link_port: Port = Field(
        default=5099,
        description="The relay's port on 127.0.0.1 (only with latency_ms > 0).",
    )

    @field_validator("primary")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path, for example /etc/hastack/demo.yaml")
        return value


class BinariesSpec(_Model):
    """Where the external programs are. Defaults match Debian 12 packages and `make up`."""

    etcd: Path = Path("/usr/bin/etcd")
    haproxy: Path = Path("/usr/sbin/haproxy")
    pgbouncer: Path = Path("/usr/sbin/pgbouncer")
    redis_server: Path = Path("/usr/bin/redis-server")
    pgbackrest: Path = Path("/usr/bin/pgbackrest")
    prometheus: Path = Path("/usr/bin/prometheus")
    alertmanager: Path = Path("/usr/bin/prometheus-alertmanager")
    node_exporter: Path = Path("/usr/bin/prometheus-node-exporter")
    postgres_exporter: Path = Path("/usr/bin/prometheus-postgres-exporter")
    redis_exporter: Path = Path("/usr/bin/prometheus-redis-exporter")
    pgbouncer_exporter: Path = Field(
        default=Path("/opt/hastack/pgbouncer-exporter/bin/pgbouncer-exporter"),
        description="PyPI prometheus-pgbouncer-exporter 2.1.2, in its own venv (`make up`).",
    )
    postgres_bin_dir: Path | None = Field(
        default=None, description="Default: /usr/lib/postgresql/<version>/bin."
    )
    patroni: Path = Field(
        default=Path("/opt/hastack/venv/bin/patroni"),
        description="Patroni from its own venv, at a path every node user can read.",
    )
    app_python: Path = Field(
        default=Path("/opt/hastack/venv/bin/python"),
        description="The Python app instances run with (hastack[app] installed in it).",
    )
    hastack_python: Path = Field(
        default=Path("/opt/hastack/venv/bin/python"),
        description=(
            "The Python supervisord and the watcher (both root) run with: an installed, "
            "root-owned copy of hastack (`make up` makes it), never a checkout."
        ),
    )


Target = Literal["local", "compose", "swarm", "kubernetes", "systemd"]
"""Where the stack runs: `local` is this machine under hastack's supervisor (`hastack up`); the
others are what `hastack render` writes for an engine that runs it."""

HostLabel = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
        description="Host name: lowercase letters, digits and '-', at most 31 characters.",
    ),
]


class HostSpec(_Model):
    """One machine of a stack that spans several (the swarm and systemd targets)."""

    name: HostLabel = Field(description="What hastack calls the host (placement, plan, render).")
    address: str = Field(
        description=(
            "The IP address the other hosts reach this one at (a private network): every "
            "component placed here listens on it."
        )
    )
    runs: tuple[str, ...] = Field(
        default=(),
        description=(
            "Units placed on this host: PostgreSQL nodes (pg1, ...), etcd witness nodes "
            "(dcs4, ...), app instances (app1, ...), `services` (HAProxy, PgBouncer, Redis), "
            "`backup` (the pgBackRest repository) and `monitoring`. A unit no host names is "
            "placed by hastack (see `hastack plan`)."
        ),
    )

    @field_validator("address")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                "not an IP address; write the host's private address, for example "
                "10.0.0.11 (a name may resolve differently on each host)"
            ) from None
        if address.is_unspecified or address.is_multicast:
            raise ValueError(f"{value} cannot be a host's address; write its private address")
        return str(address)


StackName = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9-]{0,15}$",
        description="Stack name: lowercase letters, digits and '-', at most 16 characters.",
    ),
]


class StackSpec(_Model):
    """One `hastack.yaml`."""

    name: StackName = Field(default="demo")
    target: Target = Field(
        default="local",
        description=(
            "local: this machine, under hastack's supervisor (`hastack up`). compose, swarm, "
            "kubernetes, systemd: rendered for that engine by `hastack render TARGET`."
        ),
    )
    hosts: tuple[HostSpec, ...] = Field(
        default=(),
        description=(
            "The machines of a multi-host stack (swarm, systemd): each component listens on "
            "its host's address. Empty: every component on its own loopback address here."
        ),
    )
    state_dir: Path | None = Field(
        default=None, description="Default: /var/lib/hastack/<name>. Created by hastack."
    )
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    etcd: EtcdSpec = Field(default_factory=EtcdSpec)
    postgres: PostgresSpec = Field(default_factory=PostgresSpec)
    patroni: PatroniSpec = Field(default_factory=PatroniSpec)
    haproxy: HAProxySpec = Field(default_factory=HAProxySpec)
    pgbouncer: PgBouncerSpec = Field(default_factory=PgBouncerSpec)
    redis: RedisSpec = Field(default_factory=RedisSpec)
    fencing: FencingSpec = Field(default_factory=FencingSpec)
    app: AppSpec = Field(default_factory=AppSpec)
    http: HttpSpec = Field(default_factory=HttpSpec)
    backup: BackupSpec = Field(default_factory=BackupSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    standby_cluster: StandbyClusterSpec | None = Field(
        default=None,
        description="Declare this stack a standby cluster of another (a second region).",
    )
    binaries: BinariesSpec = Field(default_factory=BinariesSpec)

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path, for example /var/lib/hastack/demo")
        return value
