"""Monitoring on the shared stack: Prometheus scrapes every component with the labels the
alert rules use, loads every rule, fires none of the availability alerts on a healthy stack,
and Alertmanager routes an alert to hastack's receiver; both refuse anyone without the
monitoring password."""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from hastack.render.alerts import ALERTS
from hastack.render.dashboards import DASHBOARDS
from tests.integration.conftest import Stack
from tests.integration.helpers import wait_until

AVAILABILITY = {
    "PatroniNoPrimary",
    "PatroniMultiplePrimaries",
    "PostgresqlDown",
    "EtcdNoLeader",
    "EtcdMemberDown",
    "HAProxyBackendDown",
    "RedisDown",
    "AppInstanceDown",
    "PgBouncerDown",
    "SyncStandbyMissing",
    "WatcherSilent",
}


def _tls(stack: Stack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.hs.plan.paths.ca_cert))


def _client(stack: Stack, password: str | None = None) -> httpx.Client:
    secret = stack.hs.secrets.monitoring_password if password is None else password
    return httpx.Client(auth=("hastack", secret), verify=_tls(stack), timeout=5)


def _query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    with _client(stack) as client:
        answer = client.get(f"{stack.hs.plan.prometheus_url}/api/v1/query", params={"query": expr})
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _values(stack: Stack, expr: str, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in _query(stack, expr)}


def test_prometheus_and_alertmanager_want_the_password(stack: Stack) -> None:
    plan = stack.hs.plan
    for url in (plan.prometheus_url, plan.alertmanager_url):
        with httpx.Client(verify=_tls(stack), timeout=5) as anonymous:
            assert anonymous.get(f"{url}/api/v2/status").status_code == 401
        with _client(stack, "not-the-password") as wrong:
            assert wrong.get(f"{url}/-/healthy").status_code == 401
        with _client(stack) as client:
            assert client.get(f"{url}/-/healthy").status_code == 200
    # No silence (which would mute every alert) without the password.
    with httpx.Client(verify=_tls(stack), timeout=5) as anonymous:
        silence = {
            "matchers": [],
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "2099-01-01T00:00:00Z",
        }
        assert (
            anonymous.post(f"{plan.alertmanager_url}/api/v2/silences", json=silence).status_code
            == 401
        )


def test_every_target_is_scraped(stack: Stack) -> None:
    last: list[str] = []

    def all_up() -> bool:
        with _client(stack) as client:
            answer = client.get(f"{stack.hs.plan.prometheus_url}/api/v1/targets")
        targets = answer.json()["data"]["activeTargets"]
        last[:] = [
            f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}"
            for t in targets
            if t["health"] != "up"
        ]
        return bool(targets) and not last

    try:
        wait_until(all_up, timeout_s=90, interval_s=2)
    except AssertionError:
        raise AssertionError(f"targets not up: {last}") from None
    jobs = {r["metric"]["job"] for r in _query(stack, "up == 1")}
    assert jobs == {
        "prometheus",
        "alertmanager",
        "node",
        "postgres",
        "patroni",
        "etcd",
        "haproxy",
        "redis",
        "pgbouncer",
        "app",
    }
    # `hastack status` asks Prometheus the same: no target down, and says which one is.
    code, status = stack.status()
    assert status["monitoring"] == {"ok": True, "error": None, "targets_down": []}, status
    assert code == 0, status["problems"]


def test_the_series_the_rules_read_are_there_with_their_labels(stack: Stack) -> None:
    plan = stack.hs.plan
    nodes = {n.name for n in plan.postgres_nodes}
    leader = stack.status()[1]["leader_key"]

    def replicas() -> dict[str, float]:
        found = _values(stack, "pg_replication_is_replica", "pg_node")
        return found if set(found) == nodes else {}

    roles = wait_until(replicas, timeout_s=60, interval_s=2)
    assert {n for n, v in roles.items() if v == 0} == {leader}
    assert set(_values(stack, "pg_replication_lag_seconds", "pg_node")) == nodes
    assert _values(stack, "pg_up", "pg_node") == dict.fromkeys(nodes, 1.0)
    assert _values(stack, "patroni_primary", "pg_node")[leader] == 1.0
    assert sum(_values(stack, "patroni_primary", "pg_node").values()) == 1.0
    assert len(_values(stack, "etcd_server_has_leader", "member")) == len(plan.etcd_nodes)
    assert _values(stack, 'haproxy_backend_active_servers{proxy="pg_primary"}', "proxy") == {
        "pg_primary": 1.0
    }
    assert _values(stack, "redis_up", "job") == {"redis": 1.0}
    assert _values(stack, "pgbouncer_up", "job") == {"pgbouncer": 1.0}
    pools = _values(stack, "pgbouncer_databases_database_pool_size", "database")
    assert set(pools) >= set(plan.pgbouncer_databases)
    assert set(_values(stack, 'up{job="app"}', "app")) == {i.name for i in plan.app_instances}
    archived = _values(stack, "pg_stat_archiver_last_archive_time", "pg_node")
    assert archived[leader] > 0
    # hastack's own, written by the watcher (the node exporter's textfile collector).
    beat = wait_until(
        lambda: _values(stack, "hastack_watcher_heartbeat_timestamp_seconds", "job"),
        timeout_s=30,
        interval_s=2,
    )
    assert time.time() - beat["node"] < 60
    certs = _values(stack, "hastack_certificate_expiry_timestamp_seconds", "certificate")
    assert {"ca", "monitoring", *nodes} <= set(certs)
    assert min(certs.values()) > time.time() + 14 * 86400
    backups = wait_until(
        lambda: _values(stack, "hastack_backup_last_success_timestamp_seconds", "repo"),
        timeout_s=90,
        interval_s=3,
    )
    assert backups["repo1"] > 0


def test_every_rule_is_loaded_and_no_availability_alert_fires(stack: Stack) -> None:
    with _client(stack) as client:
        groups = client.get(f"{stack.hs.plan.prometheus_url}/api/v1/rules").json()["data"]
    rules = [r for g in groups["groups"] for r in g["rules"]]
    assert len(rules) == len(ALERTS)
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    # Firing, not pending: a pending alert is a condition seen at one evaluation (a scrape
    # that failed once), which is what each rule's `for:` is there to absorb.
    firing = {r["name"] for r in rules if r["state"] == "firing" and r["name"] in AVAILABILITY}
    assert not firing, firing


def test_alertmanager_routes_an_alert_to_the_receiver_by_severity(stack: Stack) -> None:
    plan = stack.hs.plan
    log = plan.paths.alerts_log
    marker = uuid.uuid4().hex[:8]
    alerts = [
        {
            "labels": {"alertname": f"HastackTest{severity}", "severity": severity, "run": marker},
            "annotations": {"summary": "a test alert from test_22"},
        }
        for severity in ("P0", "P3")
    ]
    with _client(stack) as client:
        sent = client.post(f"{plan.alertmanager_url}/api/v2/alerts", json=alerts)
    assert sent.status_code == 200, sent.text

    def received() -> dict[str, str] | None:
        if not log.exists():
            return None
        got = {}
        for line in log.read_text().splitlines():
            record = json.loads(line)
            for alert in record["alerts"]:
                if alert["labels"].get("run") == marker:
                    got[alert["labels"]["severity"]] = record["receiver"]
        return got if len(got) == 2 else None

    assert wait_until(received, timeout_s=30, interval_s=0.5) == {"P0": "page", "P3": "ticket"}


def test_every_dashboard_query_returns_series_from_the_live_prometheus(
    stack: Stack, tmp_path: Path
) -> None:
    written = stack.run("dashboards", "--out", str(tmp_path / "dash"), "--json")
    assert written.code == 0, written.err
    files = [Path(p) for p in written.json()["dashboards"]]
    assert len(files) == len(DASHBOARDS)
    exprs = [
        t["expr"]
        for f in files
        for panel in json.loads(f.read_text())["panels"]
        for t in panel["targets"]
    ]
    # rate() over 5 minutes needs two samples of each series: at most a few scrapes.
    empty: list[str] = []

    def all_answer() -> bool:
        empty[:] = [e for e in exprs if not _query(stack, e)]
        return not empty

    try:
        wait_until(all_answer, timeout_s=60, interval_s=5)
    except AssertionError:
        raise AssertionError(f"queries without series: {empty}") from None


def test_every_log_merges_into_one_time_ordered_view(stack: Stack) -> None:
    result = stack.run("logs", "--all", "--since", "30m", "--json")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    sources = {r["source"] for r in records}
    # A stamp of each kind: Patroni's, etcd's JSON, PgBouncer's, Redis's, the watcher's,
    # the app's JSON, Prometheus's JSON, PostgreSQL's own log.
    for source in (
        "pg1-patroni",
        "pg1-etcd",
        "pgbouncer",
        "redis",
        "fencer",
        "app1",
        "prometheus",
        "pg1-postgres",
    ):
        assert source in sources, sorted(sources)
    times = [r["time"] for r in records]
    assert times == sorted(times)
    last = stack.run("logs", "--all", "-n", "5")
    assert last.code == 0 and len(last.out.splitlines()) == 5, last.out
    bad = stack.run("logs", "--all", "--since", "yesterday")
    assert bad.code == 1 and "give a duration" in bad.err
    neither = stack.run("logs")
    assert neither.code == 1 and "--all" in neither.err


def test_status_names_a_target_prometheus_cannot_scrape(stack: Stack) -> None:
    """The exporter stopped (the watcher held off it): beside the program's own state,
    status says Prometheus' scrapes of it fail, and the problem clears once it runs again."""
    program = "monitor:redis-exporter"
    with stack.hs.hold(120, "test: an exporter down", [program]):
        stack.hs.supervisor.stop(program)
        try:

            def said() -> list[str]:
                problems = stack.status()[1]["problems"]
                return [p for p in problems if p.startswith("monitoring: ") and "redis" in p]

            assert wait_until(said, timeout_s=60, interval_s=2) == [
                "monitoring: Prometheus' last 3 scrapes of redis 127.0.213.106:9121 failed"
            ]
        finally:
            stack.hs.supervisor.start(program)
    wait_until(lambda: stack.status()[1]["monitoring"]["ok"], timeout_s=60, interval_s=2)
