"""The stack's alert rules (Prometheus), each with the series that must fire it and those of a
healthy stack that must not, rendered as a `promtool test rules` file; and Alertmanager's
routing by severity with its inhibitions. Pure.

Severities: P0 page now (data at risk or the service down), P1 page (degraded, redundancy
lost), P2 ticket today (will hurt if left), P3 ticket (housekeeping). Thresholds come from
the service levels in the project's reference (p95 500 ms / 2 s, error rate 1 % / 5 %,
lag 10 s, pools 80 % / 95 %, disk 15 % / 10 %, backup 26 h, certificates 14 days).

Descriptions carry the current value only as `{{ $value | printf "%.Nf" }}` and labels only
as `{{ $labels.NAME }}`: the test file states every expected annotation exactly (promtool
compares them), and those two forms render the same in Go and here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hastack.render.yamltext import to_yaml

SEVERITIES = ("P0", "P1", "P2", "P3")
RUNBOOK = "docs/runbooks.md"
SCRAPE_S = 5
"""Scrape and evaluation interval the rules (their `for:` and windows) are written for."""

# Jobs and the labels the scrape configuration gives each target (besides `instance`):
# postgres: pg_node; patroni: cluster, pg_node; etcd: member; app: app. Prometheus' own
# `up` series carry `job`.


@dataclass(frozen=True)
class Series:
    series: str
    values: str
    """promtool's expanding notation: '1x20' (1, 21 times), '0+10x20' (0, 10, 20 ...)."""


@dataclass(frozen=True)
class Case:
    series: tuple[Series, ...]
    at: str
    """Evaluation time, e.g. '2m'."""
    labels: dict[str, str] = field(default_factory=dict)
    """The firing alert's labels (besides alertname and severity); unused for a quiet case."""
    value: float = 0.0
    """The firing alert's value (what `$value` renders)."""


@dataclass(frozen=True)
class Alert:
    name: str
    group: str
    severity: str
    expr: str
    for_s: int
    summary: str
    description: str
    fires: Case
    quiet: Case
    test_interval_s: int = SCRAPE_S
    """Sample and evaluation step of its test: a minute for alerts whose windows are hours
    (promtool evaluates every rule at every step: 30 h at 5 s took minutes)."""

    @property
    def anchor(self) -> str:
        return self.name.lower()

    @property
    def runbook(self) -> str:
        return f"{RUNBOOK}#{self.anchor}"


def _s(series: str, values: str) -> Series:
    return Series(series, values)


HOUR = 3600
DAY = 24 * HOUR

HTTP_REQUESTS = 'haproxy_frontend_http_requests_total{proxy="web_https"}'
HTTP_5XX = 'haproxy_frontend_http_responses_total{proxy="web_https",code="5xx"}'
"""The edge (HAProxy's HTTPS frontend): what clients see, 503s of an empty backend included."""
AVAILABILITY_BUDGET = 0.001
"""The 99.9 % availability SLO's error budget."""
HTTP_ERROR_RATE_SUMMARY = '{{ $value | printf "%.1f" }} % of HTTP requests fail'
HTTP_ERROR_RATE_DESCRIPTION = (
    '{{ $value | printf "%.1f" }} % of requests got a 5xx over 5 minutes (warning at '
    "1 %, critical at 5 %)."
)


def _error_ratio(window: str) -> str:
    return f"sum(rate({HTTP_5XX}[{window}])) / sum(rate({HTTP_REQUESTS}[{window}]))"


def _burn_rate(factor: float, long: str, short: str) -> str:
    """Multi-window burn: the budget spent `factor` times too fast over both windows."""
    limit = f"{factor} * {AVAILABILITY_BUDGET}"
    return f"({_error_ratio(long)}) > {limit} and ({_error_ratio(short)}) > {limit}"


DISK_SUMMARY = '{{ $labels.mountpoint }}: {{ $value | printf "%.0f" }} % free'
ROOT_FS = {"instance": "h", "fstype": "ext4", "mountpoint": "/"}


def _disk_free_below(percent: int) -> str:
    on_disk = '{fstype!~"tmpfs|ramfs"}'
    return (
        f"100 * node_filesystem_avail_bytes{on_disk} / node_filesystem_size_bytes{on_disk} "
        f"< {percent}"
    )


def _disk_series(free_percent: int, fstype: str = "ext4", mount: str = "/") -> tuple[Series, ...]:
    """A filesystem of 100 bytes with this much free."""
    labels = f'{{instance="h",fstype="{fstype}",mountpoint="{mount}"}}'
    return (
        _s(f"node_filesystem_avail_bytes{labels}", f"{free_percent}x100"),
        _s(f"node_filesystem_size_bytes{labels}", "100x100"),
    )


def _http_series(requests: int, errors: int, samples: int) -> tuple[Series, ...]:
    """Counters of requests and of 5xx growing by these per sample."""
    return (
        _s(HTTP_REQUESTS, f"0+{requests}x{samples}"),
        _s(HTTP_5XX, f"0+{errors}x{samples}"),
    )


ALERTS: tuple[Alert, ...] = (
    # --- availability -------------------------------------------------------------------
    Alert(
        "PatroniNoPrimary",
        "availability",
        "P0",
        'sum by (cluster) (patroni_primary) < 1 or sum by (cluster) (up{job="patroni"}) == 0',
        10,
        "No PostgreSQL primary in cluster {{ $labels.cluster }}",
        "No Patroni member of {{ $labels.cluster }} is the primary: writes fail until one is "
        "elected.",
        Case(
            (
                _s('patroni_primary{cluster="demo",pg_node="pg1"}', "0x10"),
                _s('patroni_primary{cluster="demo",pg_node="pg2"}', "0x10"),
                _s('up{job="patroni",cluster="demo",pg_node="pg1"}', "1x10"),
            ),
            "30s",
            {"cluster": "demo"},
            0,
        ),
        Case(
            (
                _s('patroni_primary{cluster="demo",pg_node="pg1"}', "1x10"),
                _s('patroni_primary{cluster="demo",pg_node="pg2"}', "0x10"),
                _s('up{job="patroni",cluster="demo",pg_node="pg1"}', "1x10"),
            ),
            "30s",
        ),
    ),
    Alert(
        "PatroniMultiplePrimaries",
        "availability",
        "P0",
        "sum by (cluster) (patroni_primary) > 1",
        10,
        "More than one primary in cluster {{ $labels.cluster }}",
        '{{ $value | printf "%.0f" }} members of {{ $labels.cluster }} say they are the '
        "primary: a split brain; writes may diverge.",
        Case(
            (
                _s('patroni_primary{cluster="demo",pg_node="pg1"}', "1x10"),
                _s('patroni_primary{cluster="demo",pg_node="pg2"}', "1x10"),
            ),
            "30s",
            {"cluster": "demo"},
            2,
        ),
        Case((_s('patroni_primary{cluster="demo",pg_node="pg1"}', "1x10"),), "30s"),
    ),
    Alert(
        "PatroniLeaderChanged",
        "availability",
        "P2",
        # Per new leader, so two failovers a minute apart are two alerts (one per cluster
        # would still be firing from the first and say nothing of the second).
        "changes(patroni_primary[1m]) > 0 and patroni_primary == 1",
        0,
        "{{ $labels.pg_node }} became the PostgreSQL leader of {{ $labels.cluster }}",
        "A failover or a switchover moved the primary of {{ $labels.cluster }} to "
        "{{ $labels.pg_node }} in the last minute: if nobody planned it, find out why.",
        Case(
            (
                _s('patroni_primary{cluster="demo",pg_node="pg1"}', "1 1 1 0 0 0 0"),
                _s('patroni_primary{cluster="demo",pg_node="pg2"}', "0 0 0 1 1 1 1"),
            ),
            "30s",
            {"cluster": "demo", "pg_node": "pg2"},
            1,
        ),
        Case(
            (
                _s('patroni_primary{cluster="demo",pg_node="pg1"}', "1x20"),
                _s('patroni_primary{cluster="demo",pg_node="pg2"}', "0x20"),
            ),
            "90s",
        ),
    ),
    Alert(
        "PostgresqlDown",
        "availability",
        "P1",
        "pg_up == 0",
        10,
        "PostgreSQL on {{ $labels.pg_node }} does not answer",
        "The exporter on {{ $labels.pg_node }} cannot reach PostgreSQL: that node serves "
        "nothing until Patroni brings it back.",
        Case(
            (_s('pg_up{instance="a",pg_node="pg2"}', "0x10"),),
            "30s",
            {"instance": "a", "pg_node": "pg2"},
            0,
        ),
        Case((_s('pg_up{instance="a",pg_node="pg2"}', "1x10"),), "30s"),
    ),
    Alert(
        "EtcdNoLeader",
        "availability",
        "P0",
        "etcd_server_has_leader == 0",
        10,
        "etcd member {{ $labels.member }} has no leader",
        "etcd member {{ $labels.member }} sees no leader: without quorum Patroni cannot renew "
        "the leader key and the primary steps down.",
        Case(
            (_s('etcd_server_has_leader{instance="a",member="etcd1"}', "0x10"),),
            "30s",
            {"instance": "a", "member": "etcd1"},
            0,
        ),
        Case((_s('etcd_server_has_leader{instance="a",member="etcd1"}', "1x10"),), "30s"),
    ),
    Alert(
        "EtcdMemberDown",
        "availability",
        "P1",
        'up{job="etcd"} == 0',
        30,
        "etcd member {{ $labels.member }} is down",
        "etcd member {{ $labels.member }} does not answer: one more loss and the cluster "
        "loses quorum.",
        Case(
            (_s('up{job="etcd",instance="a",member="etcd2"}', "0x20"),),
            "1m",
            {"job": "etcd", "instance": "a", "member": "etcd2"},
            0,
        ),
        Case((_s('up{job="etcd",instance="a",member="etcd2"}', "1x20"),), "1m"),
    ),
    Alert(
        "HAProxyBackendDown",
        "availability",
        "P1",
        'haproxy_backend_active_servers{proxy=~"web_app|pg_replicas"} == 0',
        10,
        "HAProxy backend {{ $labels.proxy }} has no server up",
        "Every server of backend {{ $labels.proxy }} is down: its requests fail (the "
        "read-write backend is covered by PatroniNoPrimary).",
        Case(
            (_s('haproxy_backend_active_servers{instance="a",proxy="web_app"}', "0x10"),),
            "30s",
            {"instance": "a", "proxy": "web_app"},
            0,
        ),
        Case(
            (
                _s('haproxy_backend_active_servers{instance="a",proxy="web_app"}', "2x10"),
                # One of the three is DOWN by design on a role backend: never an alert.
                _s('haproxy_backend_active_servers{instance="a",proxy="pg_primary"}', "1x10"),
            ),
            "30s",
        ),
    ),
    Alert(
        "PgBouncerDown",
        "availability",
        "P1",
        "pgbouncer_up == 0",
        10,
        "PgBouncer does not answer",
        "The pooler on {{ $labels.instance }} does not answer: every pooled connection "
        "(DATABASE_URL) fails.",
        Case((_s('pgbouncer_up{instance="a"}', "0x10"),), "30s", {"instance": "a"}, 0),
        Case((_s('pgbouncer_up{instance="a"}', "1x10"),), "30s"),
    ),
    Alert(
        "RedisDown",
        "availability",
        "P1",
        "redis_up == 0",
        10,
        "Redis does not answer",
        "Redis on {{ $labels.instance }} does not answer: sessions and rate limits fall back "
        "(fail open), the cache is bypassed.",
        Case((_s('redis_up{instance="a"}', "0x10"),), "30s", {"instance": "a"}, 0),
        Case((_s('redis_up{instance="a"}', "1x10"),), "30s"),
    ),
    Alert(
        "AppInstanceDown",
        "availability",
        "P2",
        'up{job="app"} == 0',
        30,
        "App instance {{ $labels.app }} is down",
        "App instance {{ $labels.app }} does not answer its metrics: HAProxy routes around "
        "it; the others carry its load.",
        Case(
            (_s('up{job="app",instance="a",app="app2"}', "0x20"),),
            "1m",
            {"job": "app", "instance": "a", "app": "app2"},
            0,
        ),
        Case((_s('up{job="app",instance="a",app="app2"}', "1x20"),), "1m"),
    ),
    Alert(
        "AppInstanceCrashLooping",
        "availability",
        "P2",
        'changes(process_start_time_seconds{job="app"}[15m]) > 3',
        0,
        "App instance {{ $labels.app }} keeps restarting",
        'App instance {{ $labels.app }} started {{ $value | printf "%.0f" }} times in 15 minutes.',
        Case(
            (
                _s(
                    'process_start_time_seconds{job="app",instance="a",app="app1"}',
                    "100 200 300 400 500",
                ),
            ),
            "20s",
            {"job": "app", "instance": "a", "app": "app1"},
            4,
        ),
        Case(
            (_s('process_start_time_seconds{job="app",instance="a",app="app1"}', "100x20"),), "1m"
        ),
    ),
    # --- replication --------------------------------------------------------------------
    Alert(
        "ReplicationLagHigh",
        "replication",
        "P2",
        "pg_replication_lag_seconds > 10",
        60,
        "Replica {{ $labels.pg_node }} lags",
        'Replica {{ $labels.pg_node }} replays {{ $value | printf "%.0f" }} s behind the '
        "primary (target < 1 s; alert > 10 s): a failover to it would wait for that.",
        Case(
            (_s('pg_replication_lag_seconds{instance="a",pg_node="pg3"}', "30x30"),),
            "2m",
            {"instance": "a", "pg_node": "pg3"},
            30,
        ),
        Case((_s('pg_replication_lag_seconds{instance="a",pg_node="pg3"}', "0x30"),), "2m"),
    ),
    Alert(
        "ReplicationLagBytesHigh",
        "replication",
        "P2",
        "pg_replication_replay_lag_bytes / 1048576 > 64",
        60,
        "Replica {{ $labels.pg_node }} is far behind in WAL",
        'Replica {{ $labels.pg_node }} has {{ $value | printf "%.0f" }} MiB of WAL not yet '
        "replayed.",
        Case(
            (_s('pg_replication_replay_lag_bytes{instance="a",pg_node="pg3"}', "134217728x30"),),
            "2m",
            {"instance": "a", "pg_node": "pg3"},
            128,
        ),
        Case((_s('pg_replication_replay_lag_bytes{instance="a",pg_node="pg3"}', "4096x30"),), "2m"),
    ),
    Alert(
        "SyncStandbyMissing",
        "replication",
        "P1",
        "sum by (cluster) (patroni_sync_standby) < 1 and sum by (cluster) (patroni_primary) == 1",
        30,
        "No synchronous standby in cluster {{ $labels.cluster }}",
        "The primary of {{ $labels.cluster }} has no synchronous standby: a commit is "
        "acknowledged on one node only (RPO is no longer 0).",
        Case(
            (
                _s('patroni_sync_standby{cluster="demo",pg_node="pg2"}', "0x20"),
                _s('patroni_primary{cluster="demo",pg_node="pg1"}', "1x20"),
            ),
            "1m",
            {"cluster": "demo"},
            0,
        ),
        Case(
            (
                _s('patroni_sync_standby{cluster="demo",pg_node="pg2"}', "1x20"),
                _s('patroni_primary{cluster="demo",pg_node="pg1"}', "1x20"),
            ),
            "1m",
        ),
    ),
    # --- PostgreSQL ---------------------------------------------------------------------
    Alert(
        "PostgresqlTooManyConnections",
        "postgresql",
        "P2",
        "100 * sum by (pg_node) (pg_stat_activity_count) / on (pg_node) "
        "max by (pg_node) (pg_settings_max_connections) > 80",
        60,
        "PostgreSQL on {{ $labels.pg_node }} is near max_connections",
        '{{ $labels.pg_node }} uses {{ $value | printf "%.0f" }} % of max_connections.',
        Case(
            (
                _s('pg_stat_activity_count{pg_node="pg1",datname="app",state="active"}', "90x20"),
                _s('pg_settings_max_connections{pg_node="pg1"}', "100x20"),
            ),
            "2m",
            {"pg_node": "pg1"},
            90,
        ),
        Case(
            (
                _s('pg_stat_activity_count{pg_node="pg1",datname="app",state="active"}', "20x20"),
                _s('pg_settings_max_connections{pg_node="pg1"}', "100x20"),
            ),
            "2m",
        ),
    ),
    Alert(
        "PostgresqlCacheHitRatioLow",
        "postgresql",
        "P3",
        "100 * sum by (pg_node) (rate(pg_stat_database_blks_hit[5m])) / (sum by (pg_node) "
        "(rate(pg_stat_database_blks_hit[5m])) + sum by (pg_node) "
        "(rate(pg_stat_database_blks_read[5m]))) < 95 and sum by (pg_node) "
        "(rate(pg_stat_database_blks_read[5m])) > 10",
        600,
        "PostgreSQL on {{ $labels.pg_node }} reads from disk",
        '{{ $labels.pg_node }} finds {{ $value | printf "%.0f" }} % of blocks in its buffer '
        "cache (target > 95 %): shared_buffers may be too small for the working set.",
        Case(
            (
                _s('pg_stat_database_blks_hit{pg_node="pg1",datname="app"}', "0+400x300"),
                _s('pg_stat_database_blks_read{pg_node="pg1",datname="app"}', "0+100x300"),
            ),
            "20m",
            {"pg_node": "pg1"},
            80,
        ),
        Case(
            (
                _s('pg_stat_database_blks_hit{pg_node="pg1",datname="app"}', "0+9900x300"),
                _s('pg_stat_database_blks_read{pg_node="pg1",datname="app"}', "0+100x300"),
            ),
            "20m",
        ),
    ),
    Alert(
        "WalArchivingFailing",
        "backup",
        "P1",
        # Only the primary archives: a replica keeps the counters of its time as primary
        # (a node demoted, or replaced by a cluster restore, right after a failure).
        "increase(pg_stat_archiver_failed_count[5m]) > 0 and on (pg_node) "
        "time() - pg_stat_archiver_last_archive_time > 120 and on (pg_node) "
        "patroni_primary == 1",
        60,
        "WAL archiving fails on {{ $labels.pg_node }}",
        '{{ $labels.pg_node }} could not archive WAL for {{ $value | printf "%.0f" }} '
        "failures in 5 minutes: a whole-cluster loss would lose everything since the last "
        "archived segment, and pg_wal grows.",
        Case(
            (
                _s('pg_stat_archiver_failed_count{pg_node="pg1"}', "0+1x60"),
                _s('pg_stat_archiver_last_archive_time{pg_node="pg1"}', "0x60"),
                _s('patroni_primary{pg_node="pg1"}', "1x60"),
            ),
            "5m",
            {"pg_node": "pg1"},
            60,
        ),
        Case(
            (
                # A failure, then archiving again (the last archive is recent).
                _s('pg_stat_archiver_failed_count{pg_node="pg1"}', "0 1x59"),
                _s('pg_stat_archiver_last_archive_time{pg_node="pg1"}', "0+5x60"),
                _s('patroni_primary{pg_node="pg1"}', "1x60"),
                # Failures counted while pg2 was the primary; it is a replica now.
                _s('pg_stat_archiver_failed_count{pg_node="pg2"}', "0+1x60"),
                _s('pg_stat_archiver_last_archive_time{pg_node="pg2"}', "0x60"),
                _s('patroni_primary{pg_node="pg2"}', "0x60"),
            ),
            "5m",
        ),
    ),
    # --- pooler -------------------------------------------------------------------------
    Alert(
        "PgBouncerClientsWaiting",
        "pooler",
        "P2",
        "sum by (instance, database) (pgbouncer_pools_client_waiting_connections) > 0",
        60,
        "Clients wait for a server connection in pool {{ $labels.database }}",
        '{{ $value | printf "%.0f" }} clients have waited for a server connection in '
        "{{ $labels.database }} for a minute: the pool is too small for the load, or "
        "queries hold connections too long.",
        Case(
            (
                _s(
                    'pgbouncer_pools_client_waiting_connections{instance="a",database="app",user="app_a"}',
                    "5x30",
                ),
            ),
            "2m",
            {"instance": "a", "database": "app"},
            5,
        ),
        Case(
            (
                _s(
                    'pgbouncer_pools_client_waiting_connections{instance="a",database="app",user="app_a"}',
                    "0x30",
                ),
            ),
            "2m",
        ),
    ),
    Alert(
        "PgBouncerPoolSaturated",
        "pooler",
        "P2",
        "100 * sum by (instance, database) (pgbouncer_pools_server_active_connections) / "
        "on (instance, database) sum by (instance, database) "
        "(pgbouncer_databases_database_pool_size) > 80",
        300,
        'Pool {{ $labels.database }} is {{ $value | printf "%.0f" }} % busy',
        '{{ $value | printf "%.0f" }} % of pool {{ $labels.database }}\'s server connections '
        "are active (alert > 80 %, critical > 95 %).",
        Case(
            (
                _s(
                    'pgbouncer_pools_server_active_connections{instance="a",database="app",user="app_a"}',
                    "18x100",
                ),
                _s('pgbouncer_databases_database_pool_size{instance="a",database="app"}', "20x100"),
            ),
            "7m",
            {"instance": "a", "database": "app"},
            90,
        ),
        Case(
            (
                _s(
                    'pgbouncer_pools_server_active_connections{instance="a",database="app",user="app_a"}',
                    "5x100",
                ),
                _s('pgbouncer_databases_database_pool_size{instance="a",database="app"}', "20x100"),
            ),
            "7m",
        ),
    ),
    # --- HTTP (the edge, what clients see) ----------------------------------------------
    Alert(
        "HttpErrorBudgetBurnFast",
        "http",
        "P1",
        _burn_rate(14.4, "1h", "5m"),
        60,
        "HTTP errors burn the monthly error budget fast",
        '{{ $value | printf "%.3f" }} of requests failed over the last hour: at this rate '
        "the 99.9 % availability budget of 30 days is gone in 2 days.",
        Case(_http_series(100, 5, 100), "1h", {}, 0.05),
        Case(_http_series(100, 0, 100), "1h"),
        test_interval_s=60,
    ),
    Alert(
        "HttpErrorBudgetBurnSlow",
        "http",
        "P2",
        _burn_rate(6, "6h", "30m"),
        300,
        "HTTP errors burn the monthly error budget",
        '{{ $value | printf "%.3f" }} of requests failed over 6 hours: at this rate the '
        "99.9 % budget of 30 days is gone in 5 days.",
        Case(_http_series(1000, 10, 400), "6h", {}, 0.01),
        Case(_http_series(1000, 0, 400), "6h"),
        test_interval_s=60,
    ),
    Alert(
        "HttpErrorRateCritical",
        "http",
        "P1",
        f"100 * {_error_ratio('5m')} > 5",
        120,
        HTTP_ERROR_RATE_SUMMARY,
        HTTP_ERROR_RATE_DESCRIPTION,
        Case(_http_series(100, 10, 200), "10m", {}, 10),
        Case(_http_series(100, 2, 200), "10m"),
    ),
    Alert(
        "HttpErrorRateHigh",
        "http",
        "P2",
        f"100 * {_error_ratio('5m')} > 1",
        120,
        HTTP_ERROR_RATE_SUMMARY,
        HTTP_ERROR_RATE_DESCRIPTION,
        Case(_http_series(100, 2, 200), "10m", {}, 2),
        Case(_http_series(100, 0, 200), "10m"),
    ),
    Alert(
        "HttpLatencyP95High",
        "http",
        "P2",
        "1000 * histogram_quantile(0.95, sum by (le) "
        '(rate(http_request_duration_seconds_bucket{job="app"}[5m]))) > 500',
        300,
        'HTTP p95 latency is {{ $value | printf "%.0f" }} ms',
        '95 % of requests took up to {{ $value | printf "%.0f" }} ms over 5 minutes '
        "(target < 500 ms; critical at 2 s).",
        Case(
            (
                _s('http_request_duration_seconds_bucket{job="app",le="0.5"}', "0+10x200"),
                _s('http_request_duration_seconds_bucket{job="app",le="1"}', "0+100x200"),
                _s('http_request_duration_seconds_bucket{job="app",le="+Inf"}', "0+100x200"),
            ),
            "10m",
            {},
            972.2222222222222,
        ),
        Case(
            (
                _s('http_request_duration_seconds_bucket{job="app",le="0.5"}', "0+100x200"),
                _s('http_request_duration_seconds_bucket{job="app",le="1"}', "0+100x200"),
                _s('http_request_duration_seconds_bucket{job="app",le="+Inf"}', "0+100x200"),
            ),
            "10m",
        ),
    ),
    # --- saturation ---------------------------------------------------------------------
    Alert(
        "HostCpuHigh",
        "saturation",
        "P2",
        '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 80',
        300,
        'CPU {{ $value | printf "%.0f" }} % busy',
        'The host\'s CPUs were {{ $value | printf "%.0f" }} % busy over 5 minutes (alert '
        "> 80 % for 5 minutes).",
        Case(
            (_s('node_cpu_seconds_total{instance="h",cpu="0",mode="idle"}', "0+0.5x200"),),
            "15m",
            {"instance": "h"},
            90,
        ),
        Case((_s('node_cpu_seconds_total{instance="h",cpu="0",mode="idle"}', "0+4x200"),), "15m"),
    ),
    Alert(
        "HostMemoryHigh",
        "saturation",
        "P2",
        "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > 85",
        300,
        'Memory {{ $value | printf "%.0f" }} % used',
        '{{ $value | printf "%.0f" }} % of the host\'s memory is in use (alert > 85 %).',
        Case(
            (
                _s('node_memory_MemAvailable_bytes{instance="h"}', "1x100"),
                _s('node_memory_MemTotal_bytes{instance="h"}', "10x100"),
            ),
            "7m",
            {"instance": "h"},
            90,
        ),
        Case(
            (
                _s('node_memory_MemAvailable_bytes{instance="h"}', "5x100"),
                _s('node_memory_MemTotal_bytes{instance="h"}', "10x100"),
            ),
            "7m",
        ),
    ),
    Alert(
        "HostDiskLow",
        "saturation",
        "P2",
        _disk_free_below(15),
        300,
        DISK_SUMMARY,
        '{{ $labels.mountpoint }} has {{ $value | printf "%.0f" }} % free (alert < 15 %, '
        "critical < 10 %): PostgreSQL stops when its disk is full.",
        Case(_disk_series(12), "7m", ROOT_FS, 12),
        Case((*_disk_series(50), *_disk_series(1, "tmpfs", "/run")), "7m"),
    ),
    Alert(
        "HostDiskCritical",
        "saturation",
        "P1",
        _disk_free_below(10),
        120,
        DISK_SUMMARY,
        '{{ $labels.mountpoint }} has {{ $value | printf "%.0f" }} % free (critical '
        "< 10 %): free space now (old backups, logs) before PostgreSQL stops.",
        Case(_disk_series(5), "7m", ROOT_FS, 5),
        Case(_disk_series(12), "7m"),
    ),
    Alert(
        "RedisMemoryHigh",
        "saturation",
        "P2",
        "100 * redis_memory_used_bytes / redis_memory_max_bytes > 90 and "
        "redis_memory_max_bytes > 0",
        300,
        'Redis uses {{ $value | printf "%.0f" }} % of its memory',
        'Redis on {{ $labels.instance }} holds {{ $value | printf "%.0f" }} % of maxmemory: '
        "it evicts keys (sessions, cache) from here on.",
        Case(
            (
                _s('redis_memory_used_bytes{instance="a"}', "95x100"),
                _s('redis_memory_max_bytes{instance="a"}', "100x100"),
            ),
            "7m",
            {"instance": "a"},
            95,
        ),
        Case(
            (
                _s('redis_memory_used_bytes{instance="a"}', "10x100"),
                _s('redis_memory_max_bytes{instance="a"}', "100x100"),
                _s('redis_memory_used_bytes{instance="b"}', "10x100"),
                _s('redis_memory_max_bytes{instance="b"}', "0x100"),  # no limit
            ),
            "7m",
        ),
    ),
    # --- backups, certificates, the watcher (hastack's own metrics) -------------------
    Alert(
        "BackupTooOld",
        "backup",
        "P2",
        "(time() - hastack_backup_last_success_timestamp_seconds) / 3600 > 26",
        300,
        'The newest backup is {{ $value | printf "%.0f" }} h old',
        'No backup succeeded for {{ $value | printf "%.0f" }} hours (alert > 26 h): '
        "`hastack status` says why the scheduler did not take one.",
        Case(
            (_s('hastack_backup_last_success_timestamp_seconds{stanza="demo"}', "0x2000"),),
            "30h",
            {"stanza": "demo"},
            30,
        ),
        Case(
            (_s('hastack_backup_last_success_timestamp_seconds{stanza="demo"}', "0+60x2000"),),
            "30h",
        ),
        test_interval_s=60,
    ),
    Alert(
        "CertificateExpiringSoon",
        "security",
        "P3",
        "(hastack_certificate_expiry_timestamp_seconds - time()) / 86400 < 14",
        300,
        'Certificate {{ $labels.certificate }} expires in {{ $value | printf "%.0f" }} days',
        '{{ $labels.certificate }} expires in {{ $value | printf "%.0f" }} days; `hastack '
        "up` renews the stack's own (30 days ahead), an operator-supplied one is yours to "
        "replace.",
        Case(
            (
                _s(
                    'hastack_certificate_expiry_timestamp_seconds{certificate="haproxy"}',
                    f"{10 * DAY}x100",
                ),
            ),
            "7m",
            {"certificate": "haproxy"},
            (10 * DAY - 420) / DAY,
        ),
        Case(
            (
                _s(
                    'hastack_certificate_expiry_timestamp_seconds{certificate="haproxy"}',
                    f"{90 * DAY}x100",
                ),
            ),
            "7m",
        ),
    ),
    Alert(
        "WatcherSilent",
        "watcher",
        "P1",
        "time() - hastack_watcher_heartbeat_timestamp_seconds > 30",
        30,
        'The fencing watcher has not polled for {{ $value | printf "%.0f" }} s',
        'The watcher (fencing, self-healing) last polled {{ $value | printf "%.0f" }} s ago: '
        "nothing fences a stalled primary or restarts a stopped component meanwhile.",
        Case((_s("hastack_watcher_heartbeat_timestamp_seconds", "0x100"),), "2m", {}, 120),
        Case((_s("hastack_watcher_heartbeat_timestamp_seconds", "0+5x100"),), "2m"),
    ),
    Alert(
        "WatcherFenced",
        "watcher",
        "P2",
        "increase(hastack_watcher_fences_total[10m]) > 0",
        0,
        "The watcher fenced {{ $labels.pg_node }}",
        'The watcher fenced {{ $labels.pg_node }} ({{ $value | printf "%.0f" }} times in '
        "10 minutes): find out why it stalled (`hastack logs`, the watcher's decisions).",
        Case(
            (_s('hastack_watcher_fences_total{pg_node="pg1"}', "0 0 1 1 1 1"),),
            "25s",
            {"pg_node": "pg1"},
            1,
        ),
        Case((_s('hastack_watcher_fences_total{pg_node="pg1"}', "0x100"),), "5m"),
    ),
)


INHIBITIONS: tuple[dict[str, Any], ...] = (
    # A node that is down explains its lag and its archiving.
    {
        "source_matchers": ['alertname="PostgresqlDown"'],
        "target_matchers": ['alertname=~"ReplicationLag.*|WalArchivingFailing"'],
        "equal": ["pg_node"],
    },
    # No primary explains a missing synchronous standby and the HTTP errors it causes.
    {
        "source_matchers": ['alertname="PatroniNoPrimary"'],
        "target_matchers": ['alertname=~"SyncStandbyMissing|HttpError.*"'],
    },
    # Lost quorum explains the members that are down.
    {
        "source_matchers": ['alertname="EtcdNoLeader"'],
        "target_matchers": ['alertname="EtcdMemberDown"'],
    },
    # The critical disk alert supersedes the low one; the fast burn, the slow one.
    {
        "source_matchers": ['alertname="HostDiskCritical"'],
        "target_matchers": ['alertname="HostDiskLow"'],
        "equal": ["instance", "mountpoint"],
    },
    {
        "source_matchers": ['alertname="HttpErrorRateCritical"'],
        "target_matchers": ['alertname="HttpErrorRateHigh"'],
    },
    {
        "source_matchers": ['alertname="HttpErrorBudgetBurnFast"'],
        "target_matchers": ['alertname="HttpErrorBudgetBurnSlow"'],
    },
)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _rule(alert: Alert) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
    if alert.for_s:
        rule["for"] = _duration(alert.for_s)
    rule["labels"] = {"severity": alert.severity}
    rule["annotations"] = {
        "summary": alert.summary,
        "description": alert.description,
        "runbook_url": alert.runbook,
    }
    return rule


def rule_groups(alerts: tuple[Alert, ...] = ALERTS) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        groups.setdefault(alert.group, []).append(_rule(alert))
    return {
        "groups": [{"name": f"hastack-{name}", "rules": rules} for name, rules in groups.items()]
    }


def render_alert_rules(alerts: tuple[Alert, ...] = ALERTS) -> str:
    return "# Generated by hastack: the stack's alert rules. Do not edit.\n" + to_yaml(
        rule_groups(alerts)
    )


_LABEL = re.compile(r"\{\{ \$labels\.([a-z_]+) \}\}")
_VALUE = re.compile(r'\{\{ \$value \| printf "%\.(\d)f" \}\}')
_ANY = re.compile(r"\{\{.*?\}\}")


def expand(template: str, labels: dict[str, str], value: float) -> str:
    """A description as Prometheus renders it, for the two forms the rules use (anything
    else is a ValueError: the test file could not state it)."""
    text = _LABEL.sub(lambda m: labels.get(m.group(1), ""), template)
    text = _VALUE.sub(lambda m: f"{value:.{int(m.group(1))}f}", text)
    leftover = _ANY.search(text)
    if leftover is not None:
        raise ValueError(f"unsupported template {leftover.group(0)!r} in {template!r}")
    return text


def _test(alert: Alert, case: Case, firing: bool) -> dict[str, Any]:
    expected = []
    if firing:
        expected.append(
            {
                "exp_labels": {**case.labels, "severity": alert.severity},
                "exp_annotations": {
                    "summary": expand(alert.summary, case.labels, case.value),
                    "description": expand(alert.description, case.labels, case.value),
                    "runbook_url": alert.runbook,
                },
            }
        )
    return {
        "name": f"{alert.name} {'fires' if firing else 'stays quiet on a healthy stack'}",
        "interval": f"{alert.test_interval_s}s",
        "input_series": [{"series": s.series, "values": s.values} for s in case.series],
        "alert_rule_test": [
            {"eval_time": case.at, "alertname": alert.name, "exp_alerts": expected}
        ],
    }


def render_alert_tests(alerts: tuple[Alert, ...] = ALERTS) -> dict[str, str]:
    """`promtool test rules` inputs (file name -> content): for each alert, its rule alone
    (rendered as in the stack's rules file: promtool evaluates every rule of a test's files
    at every step, and all 32 at once took minutes) and a test that it fires on its case and
    stays quiet on a healthy one."""
    files = {}
    for alert in alerts:
        rules = f"rule-{alert.anchor}.yml"
        files[rules] = render_alert_rules((alert,))
        doc = {
            "rule_files": [rules],
            "evaluation_interval": f"{alert.test_interval_s}s",
            "tests": [_test(alert, alert.fires, True), _test(alert, alert.quiet, False)],
        }
        files[f"test-{alert.anchor}.yml"] = "# Generated by hastack. Do not edit.\n" + to_yaml(doc)
    return files


def alert_test_files(files: dict[str, str]) -> list[str]:
    """The test files among `render_alert_tests`' output (what promtool is given)."""
    return sorted(name for name in files if name.startswith("test-"))


RECEIVERS = {"P0": "page", "P1": "page", "P2": "ticket", "P3": "ticket"}
"""P0/P1 page someone; P2/P3 make a ticket."""


def render_alertmanager(
    webhook_base: str, user: str | None = None, password_file: str | None = None
) -> str:
    """Routing by severity to hastack's receiver (`<base>/page`, `<base>/ticket`), pages
    sent again every hour while they last, tickets every day; the inhibitions above. With
    `password_file`, Alertmanager authenticates to the receiver as `user`."""
    auth: dict[str, Any] = {}
    if password_file is not None:
        auth = {"http_config": {"basic_auth": {"username": user, "password_file": password_file}}}
    routes = [
        {
            "matchers": [f'severity=~"{"|".join(s for s, r in RECEIVERS.items() if r == name)}"'],
            "receiver": name,
            "repeat_interval": "1h" if name == "page" else "24h",
        }
        for name in ("page", "ticket")
    ]
    config = {
        "route": {
            "receiver": "ticket",
            "group_by": ["alertname", "cluster", "pg_node"],
            "group_wait": "1s",
            # A change in a group (another node, a resolution) is sent after this: at 30 s a
            # resolved page arrived ~29 s after the fix (benchmarks/alert_latency.py).
            "group_interval": "10s",
            "repeat_interval": "24h",
            "routes": routes,
        },
        "receivers": [
            {
                "name": name,
                "webhook_configs": [
                    {"url": f"{webhook_base}/{name}", "send_resolved": True, **auth}
                ],
            }
            for name in ("page", "ticket")
        ],
        "inhibit_rules": list(INHIBITIONS),
    }
    return "# Generated by hastack: Alertmanager's routing. Do not edit.\n" + to_yaml(config)
