"""What the dashboard shows, from what its sources answered. Pure: each function takes one
source's raw answer (Patroni's /cluster, a Prometheus vector, Alertmanager's alerts, a drill
report) and returns the rows the page draws, so every shape is unit-tested without a stack."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Vector = list[dict[str, Any]]
"""A Prometheus instant vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""


def _value(sample: Mapping[str, Any]) -> float:
    try:
        return float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return float("nan")


def topology(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """Patroni's /cluster: the leader and every member with its role, state, timeline and
    replay lag (bytes; None for the leader)."""
    members = []
    leader = None
    for m in cluster.get("members") or []:
        role = str(m.get("role", "?"))
        if role in ("leader", "standby_leader"):
            leader = m.get("name")
        members.append(
            {
                "name": m.get("name"),
                "role": role,
                "state": m.get("state"),
                "timeline": m.get("timeline"),
                "lag_bytes": m.get("lag") if isinstance(m.get("lag"), int) else None,
                "host": m.get("host"),
            }
        )
    members.sort(key=lambda m: str(m["name"]))
    return {"leader": leader, "members": members}


def backends(status: Vector) -> list[dict[str, Any]]:
    """HAProxy's servers from `haproxy_server_status` (one series per state, 1 for the
    current one)."""
    rows = [
        {
            "proxy": s["metric"].get("proxy"),
            "server": s["metric"].get("server"),
            "state": s["metric"].get("state"),
        }
        for s in status
        if _value(s) == 1
    ]
    return sorted(rows, key=lambda r: (str(r["proxy"]), str(r["server"])))


POOL_SERIES = {
    "client_active": "pgbouncer_pools_client_active_connections",
    "client_waiting": "pgbouncer_pools_client_waiting_connections",
    "server_active": "pgbouncer_pools_server_active_connections",
    "server_idle": "pgbouncer_pools_server_idle_connections",
}


def pools(vectors: Mapping[str, Vector]) -> list[dict[str, Any]]:
    """PgBouncer's pools (database, user) with their client and server connections;
    `vectors` maps each POOL_SERIES key to its vector."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for key, vector in vectors.items():
        for s in vector:
            name = (str(s["metric"].get("database")), str(s["metric"].get("user")))
            row = rows.setdefault(name, {"database": name[0], "user": name[1]})
            value = _value(s)
            row[key] = int(value) if value == value else None  # NaN: not a count
    return [rows[k] for k in sorted(rows)]


def apps(up: Vector) -> list[dict[str, Any]]:
    """App instances from `up{job="app"}`: answering Prometheus or not."""
    rows = [
        {
            "name": s["metric"].get("app"),
            "instance": s["metric"].get("instance"),
            "up": _value(s) == 1,
        }
        for s in up
    ]
    return sorted(rows, key=lambda r: str(r["name"]))


def backups(last_success: Vector, now: float) -> list[dict[str, Any]]:
    """Each repository's newest backup (`hastack_backup_last_success_timestamp_seconds`)."""
    rows = []
    for s in last_success:
        at = _value(s)
        rows.append(
            {
                "repo": s["metric"].get("repo"),
                "at": at if at == at else None,
                "age_s": round(now - at) if at == at else None,
            }
        )
    return sorted(rows, key=lambda r: str(r["repo"]))


SEVERITY_ORDER = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}


def alerts(active: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Alertmanager's active alerts (API v2), the most severe first."""
    rows = []
    for a in active:
        labels = a.get("labels") or {}
        annotations = a.get("annotations") or {}
        state = (a.get("status") or {}).get("state", "active")
        rows.append(
            {
                "name": labels.get("alertname"),
                "severity": labels.get("severity"),
                "node": labels.get("pg_node") or labels.get("member") or labels.get("app"),
                "since": a.get("startsAt"),
                "summary": annotations.get("summary", ""),
                "state": state,
            }
        )
    return sorted(rows, key=lambda r: (SEVERITY_ORDER.get(str(r["severity"]), 9), str(r["since"])))


def drill_summary(name: str, report: Mapping[str, Any]) -> dict[str, Any]:
    """One drill report's line in the history: its verdict, figures and the alerts that came."""
    return {
        "report": name,
        "scenario": report.get("scenario"),
        "started_at": report.get("started_at"),
        "passed": report.get("passed") is True,
        "rto_s": report.get("rto_s"),
        "healthy_again_s": report.get("healthy_again_s"),
        "lost_acked_writes": report.get("rpo_lost_acked_writes"),
        "failure_reasons": list(report.get("failure_reasons") or [])[:3],
        "alerts": sorted({str(a.get("name")) for a in report.get("alerts") or []}),
    }


def series(matrix: list[dict[str, Any]]) -> list[list[float]]:
    """The first series of a range query as [t, value] points (NaN dropped)."""
    if not matrix:
        return []
    points = []
    for t, v in matrix[0].get("values") or []:
        try:
            value = float(v)
        except (TypeError, ValueError):
            continue
        if value == value and abs(value) != float("inf"):
            points.append([float(t), value])
    return points
