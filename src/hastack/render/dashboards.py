"""Grafana dashboards for a stack, generated from code: one per layer. Pure.

Plain JSON in Grafana's dashboard model (schemaVersion 36, Grafana 9/10), one Prometheus
datasource chosen at import (`${datasource}`). Every query is one the integration tests run
against the stack's live Prometheus: each must return series on a healthy stack. Labels are
those of the scrape configuration (render/monitoring.py): `cluster`, `pg_node`, `member`,
`app`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hastack.render.alerts import AVAILABILITY_BUDGET, HTTP_5XX, HTTP_REQUESTS

SCHEMA_VERSION = 36
WIDTH = 24
"""Grafana's grid is 24 units wide."""


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    """timeseries or stat."""
    unit: str = "short"
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("hastack",))


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def _rate(expr: str) -> str:
    return f"sum(rate({expr}[5m]))"


OVERVIEW = Dashboard(
    "hastack-overview",
    "hastack: overview and SLO",
    (
        Panel(
            "HTTP requests per second (edge)",
            (_q(_rate(HTTP_REQUESTS), "requests/s"),),
            unit="reqps",
        ),
        Panel(
            "HTTP error ratio (5xx, 5 min) against the budget",
            (
                _q(
                    f"{_rate(HTTP_5XX)} / clamp_min({_rate(HTTP_REQUESTS)}, 1e-9)",
                    "5xx ratio",
                ),
                _q(f"vector({AVAILABILITY_BUDGET})", "error budget (99.9 %)"),
            ),
            unit="percentunit",
        ),
        Panel(
            "Primary (Patroni)",
            (_q("patroni_primary == 1", "{{pg_node}}"),),
            kind="stat",
            description="The node that is the primary now.",
        ),
        Panel(
            "Alerts firing",
            (_q('count(ALERTS{alertstate="firing"}) or vector(0)', "firing"),),
            kind="stat",
        ),
        Panel(
            "Targets up",
            (_q("sum by (job) (up)", "{{job}}"),),
            kind="stat",
        ),
        Panel(
            "Newest backup age",
            (
                _q(
                    "time() - hastack_backup_last_success_timestamp_seconds",
                    "{{repo}}",
                ),
            ),
            kind="stat",
            unit="s",
        ),
    ),
)

POSTGRES = Dashboard(
    "hastack-postgres",
    "hastack: PostgreSQL and Patroni",
    (
        Panel("PostgreSQL up", (_q("pg_up", "{{pg_node}}"),), kind="stat"),
        Panel("Role (1 = primary)", (_q("patroni_primary", "{{pg_node}}"),)),
        Panel("Timeline", (_q("patroni_postgres_timeline", "{{pg_node}}"),), kind="stat"),
        Panel(
            "Replication lag",
            (_q("pg_replication_lag_seconds", "{{pg_node}}"),),
            unit="s",
        ),
        Panel(
            "WAL received, not replayed",
            (_q("pg_replication_replay_lag_bytes", "{{pg_node}}"),),
            unit="bytes",
        ),
        Panel(
            "Connections",
            (_q("sum by (pg_node) (pg_stat_activity_count)", "{{pg_node}}"),),
        ),
        Panel(
            "Commits per second",
            (_q("sum by (pg_node) (rate(pg_stat_database_xact_commit[5m]))", "{{pg_node}}"),),
            unit="ops",
        ),
        Panel(
            "Age of the last archived WAL segment (primary)",
            (
                _q(
                    "time() - max by (pg_node) (pg_stat_archiver_last_archive_time > 0)",
                    "{{pg_node}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "etcd: has a leader",
            (_q("etcd_server_has_leader", "{{member}}"),),
            kind="stat",
        ),
    ),
)

POOLER = Dashboard(
    "hastack-pooler",
    "hastack: PgBouncer",
    (
        Panel("PgBouncer up", (_q("pgbouncer_up", "up"),), kind="stat"),
        Panel(
            "Clients active / waiting",
            (
                _q(
                    "sum by (database) (pgbouncer_pools_client_active_connections)",
                    "{{database}} active",
                ),
                _q(
                    "sum by (database) (pgbouncer_pools_client_waiting_connections)",
                    "{{database}} waiting",
                ),
            ),
        ),
        Panel(
            "Server connections in use",
            (
                _q(
                    "sum by (database) (pgbouncer_pools_server_active_connections)",
                    "{{database}}",
                ),
            ),
        ),
        Panel(
            "Longest client wait",
            (_q("max by (database) (pgbouncer_pools_client_maxwait_seconds)", "{{database}}"),),
            unit="s",
        ),
        Panel(
            "Pool size",
            (_q("pgbouncer_databases_database_pool_size", "{{database}}"),),
            kind="stat",
        ),
    ),
)

HTTP = Dashboard(
    "hastack-http",
    "hastack: HTTP tier",
    (
        Panel(
            "Requests per second by instance",
            (_q("sum by (app) (rate(http_requests_total[5m]))", "{{app}}"),),
            unit="reqps",
        ),
        Panel(
            "Responses by status class",
            (
                _q(
                    'sum by (code) (rate(haproxy_frontend_http_responses_total{proxy="web_https"}'
                    "[5m]))",
                    "{{code}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Latency p95 and p99 (app)",
            (
                _q(
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(http_request_duration_seconds_bucket[5m])))",
                    "p95",
                ),
                _q(
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(http_request_duration_seconds_bucket[5m])))",
                    "p99",
                ),
            ),
            unit="s",
        ),
        Panel(
            "In flight",
            (_q("sum by (app) (http_requests_in_flight)", "{{app}}"),),
        ),
        Panel(
            "HAProxy servers up by backend",
            (_q("haproxy_backend_active_servers", "{{proxy}}"),),
            kind="stat",
        ),
    ),
)

REDIS = Dashboard(
    "hastack-redis",
    "hastack: Redis",
    (
        Panel("Redis up", (_q("redis_up", "up"),), kind="stat"),
        Panel(
            "Memory used / limit",
            (
                _q("redis_memory_used_bytes", "used"),
                _q("redis_memory_max_bytes", "maxmemory"),
            ),
            unit="bytes",
        ),
        Panel("Clients", (_q("redis_connected_clients", "clients"),)),
        Panel(
            "Commands and evictions per second",
            (
                _q("rate(redis_commands_processed_total[5m])", "commands"),
                _q("rate(redis_evicted_keys_total[5m])", "evictions"),
            ),
            unit="ops",
        ),
    ),
)

NODE = Dashboard(
    "hastack-node",
    "hastack: host and hastack itself",
    (
        Panel(
            "CPU busy",
            (_q('100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m])))', "busy %"),),
            unit="percent",
        ),
        Panel(
            "Memory available",
            (_q("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "available"),),
            unit="percentunit",
        ),
        Panel(
            "Root filesystem free",
            (
                _q(
                    'node_filesystem_avail_bytes{mountpoint="/"} / '
                    'node_filesystem_size_bytes{mountpoint="/"}',
                    "free",
                ),
            ),
            unit="percentunit",
        ),
        Panel("Load", (_q("node_load1", "1 min"), _q("node_load5", "5 min"))),
        Panel(
            "Watcher: seconds since its last poll",
            (_q("time() - hastack_watcher_heartbeat_timestamp_seconds", "watcher"),),
            kind="stat",
            unit="s",
        ),
        Panel(
            "Certificates: days left",
            (
                _q(
                    "(hastack_certificate_expiry_timestamp_seconds - time()) / 86400",
                    "{{certificate}}",
                ),
            ),
            kind="stat",
            unit="d",
        ),
    ),
)

DASHBOARDS = (OVERVIEW, POSTGRES, POOLER, HTTP, REDIS, NODE)


def queries(dashboard: Dashboard) -> list[str]:
    return [q.expr for p in dashboard.panels for q in p.queries]


def _layout(panels: tuple[Panel, ...]) -> list[dict[str, int]]:
    """Left to right, a new row when the next panel does not fit: stats a third of the
    width, graphs half."""
    places = []
    x = y = row = 0
    for panel in panels:
        width, height = (8, 5) if panel.kind == "stat" else (12, 8)
        if x + width > WIDTH:
            x, y, row = 0, y + row, 0
        places.append({"h": height, "w": width, "x": x, "y": y})
        x, row = x + width, max(row, height)
    return places


def _panel(panel: Panel, index: int, place: dict[str, int]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": place,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "expr": q.expr,
                "legendFormat": q.legend,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
            }
            for n, q in enumerate(panel.queries)
        ],
    }
    if panel.kind == "stat":
        data["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "values": False}}
    return data


def render_dashboard(dashboard: Dashboard, stack: str) -> str:
    """One dashboard as Grafana's import JSON, for stack `stack` (its title and uid)."""
    model = {
        "uid": f"{dashboard.uid}-{stack}"[:40],
        "title": f"{dashboard.title} ({stack})",
        "tags": list(dashboard.tags),
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "panels": [
            _panel(p, i, place)
            for i, (p, place) in enumerate(
                zip(dashboard.panels, _layout(dashboard.panels), strict=True)
            )
        ],
    }
    return json.dumps(model, indent=2) + "\n"


def render_dashboards(stack: str) -> dict[str, str]:
    """File name -> JSON of every dashboard."""
    return {f"{d.uid}.json": render_dashboard(d, stack) for d in DASHBOARDS}


LIVE_CHARTS: tuple[tuple[str, str, str], ...] = (
    # (title, PromQL, unit): the small charts of hastack's own web dashboard, over the last
    # 15 minutes. One-minute rates: the page is watched during a drill.
    (
        "HTTP requests/s",
        'sum(rate(haproxy_frontend_http_requests_total{proxy="web_https"}[1m]))',
        "/s",
    ),
    (
        "HTTP 5xx/s",
        'sum(rate(haproxy_frontend_http_responses_total{proxy="web_https",code="5xx"}[1m]))',
        "/s",
    ),
    (
        "HTTP p95 latency",
        "1000 * histogram_quantile(0.95, sum by (le) "
        '(rate(http_request_duration_seconds_bucket{job="app"}[1m])))',
        "ms",
    ),
    (
        "Commits/s",
        'sum(rate(pg_stat_database_xact_commit{datname!~"template.*|postgres"}[1m]))',
        "/s",
    ),
    ("Replication lag", "max(pg_replication_lag_seconds)", "s"),
    ("PgBouncer clients waiting", "sum(pgbouncer_pools_client_waiting_connections)", ""),
)
