"""Monitoring in the stack: what Prometheus scrapes and with which labels, its web login,
the exporters' programs, the spec's checks, and hastack's alert receiver."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml

from hastack.drills.timeline import alerts_between
from hastack.render.alerts import ALERTS
from hastack.render.dashboards import DASHBOARDS, queries, render_dashboards
from hastack.render.files import render_stack
from hastack.render.monitoring import (
    POSTGRES_QUERIES,
    monitoring_programs,
    render_prometheus,
    render_web_config,
    scrape_jobs,
)
from hastack.render.programs import stack_programs
from hastack.runtime.alert_receiver import AlertLog, authorized, make_handler
from hastack.runtime.hastack_metrics import (
    HastackMetrics,
    backups_from_state,
    certificate_expiry,
    render,
)
from hastack.runtime.tls import load_or_make_ca
from hastack.spec import SpecError, StackSpec, derive_plan
from tests.unit.factories import fixed_secrets, load_text
from tests.unit.test_spec_checks import issues_of

PLAN = derive_plan(StackSpec())


def _targets(job: str) -> list[tuple[str, dict[str, str]]]:
    (found,) = [j for j in scrape_jobs(PLAN) if j["job_name"] == job]
    return [(c["targets"][0], c.get("labels", {})) for c in found["static_configs"]]


def test_every_component_is_scraped_with_the_labels_the_rules_use() -> None:
    jobs = {j["job_name"] for j in scrape_jobs(PLAN)}
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
    assert _targets("postgres") == [
        (f"127.0.10.{i}:9187", {"cluster": "demo", "pg_node": f"pg{i}"}) for i in (1, 2, 3)
    ]
    assert _targets("patroni")[0] == ("127.0.10.1:8008", {"cluster": "demo", "pg_node": "pg1"})
    assert [labels["member"] for _t, labels in _targets("etcd")] == ["etcd1", "etcd2", "etcd3"]
    assert _targets("app") == [
        ("127.0.10.111:8000", {"app": "app1"}),
        ("127.0.10.112:8000", {"app": "app2"}),
    ]


def test_prometheus_uses_https_and_the_password_for_its_own_endpoints() -> None:
    config = yaml.safe_load(render_prometheus(PLAN))
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == [str(PLAN.paths.alert_rules)]
    (am,) = config["alerting"]["alertmanagers"]
    assert am["scheme"] == "https" and am["basic_auth"]["username"] == "hastack"
    assert am["basic_auth"]["password_file"] == str(PLAN.paths.monitor_password_file)
    haproxy = next(j for j in config["scrape_configs"] if j["job_name"] == "haproxy")
    assert haproxy["scheme"] == "https" and haproxy["basic_auth"]["username"] == "admin"


def test_the_web_login_is_a_bcrypt_hash_of_the_monitoring_password() -> None:
    secrets = fixed_secrets()
    config = yaml.safe_load(render_web_config(PLAN, secrets))
    hashed = config["basic_auth_users"]["hastack"].encode()
    assert bcrypt.checkpw(secrets.monitoring_password.encode(), hashed)
    assert not bcrypt.checkpw(b"another password", hashed)
    # Stable: the same secrets render the same file (no needless restarts).
    assert render_web_config(PLAN, secrets) == render_web_config(PLAN, secrets)


def test_the_exporter_queries_give_the_metrics_the_rules_read() -> None:
    names = {
        f"{key}_{column}"
        for key, query in POSTGRES_QUERIES.items()
        for metric in query["metrics"]
        for column, how in metric.items()
        if how["usage"] != "LABEL"
    }
    rules = " ".join(a.expr for a in ALERTS)
    for used in (
        "pg_replication_lag_seconds",
        "pg_replication_replay_lag_bytes",
        "pg_stat_archiver_failed_count",
        "pg_stat_archiver_last_archive_time",
    ):
        assert used in rules and used in names


def test_programs_run_as_the_monitoring_user_on_the_monitoring_address() -> None:
    programs = {p.name: p for p in monitoring_programs(PLAN)}
    assert set(programs) == {
        "prometheus",
        "alertmanager",
        "alert-receiver",
        "dashboard",
        "node-exporter",
        "redis-exporter",
        "pgbouncer-exporter",
        "pg1-postgres-exporter",
        "pg2-postgres-exporter",
        "pg3-postgres-exporter",
    }
    assert {p.user for p in programs.values()} == {"hs-demo-monitor"}
    assert "--cluster.listen-address=" in programs["alertmanager"].argv
    exporter = programs["pg2-postgres-exporter"]
    assert "--web.listen-address=127.0.10.2:9187" in exporter.argv
    env = exporter.environment
    assert "sslmode=verify-full" in env["DATA_SOURCE_URI"]
    assert env["DATA_SOURCE_USER"] == "monitor"
    assert "PASS" not in " ".join(v for k, v in env.items() if k != "DATA_SOURCE_PASS_FILE")
    etcd = next(p for p in stack_programs(PLAN) if p.name == "pg1-etcd")
    assert "--listen-metrics-urls=http://127.0.10.1:2381" in etcd.argv


def test_monitoring_can_be_turned_off(tmp_path: Path) -> None:
    plan = load_text(tmp_path, "monitoring:\n  enabled: false\n").plan
    assert "monitor" not in plan.service_users
    assert monitoring_programs(plan) == []
    names = {f.path.name for f in render_stack(plan, fixed_secrets())}
    assert "prometheus.yml" not in names
    etcd = next(p for p in stack_programs(plan) if p.name == "pg1-etcd")
    assert not any("metrics" in a for a in etcd.argv)


def test_a_monitoring_port_collision_is_said_with_its_line(tmp_path: Path) -> None:
    (issue,) = issues_of(tmp_path, "monitoring:\n  node_exporter_port: 9090\n")
    assert "hastack.yaml:2" in issue and "port 9090 is also monitoring.prometheus_port" in issue
    (issue,) = issues_of(tmp_path, "monitoring:\n  postgres_exporter_port: 8008\n")
    assert "port 8008 is also patroni.rest_port on each node address" in issue


@pytest.mark.parametrize("bad", ["15", "0d", "2y", "1.5d"])
def test_retention_must_be_a_duration(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_text(tmp_path, f"monitoring:\n  retention: {bad!r}\n")
    assert "hastack.yaml:2" in str(caught.value) and "monitoring.retention" in str(caught.value)


# --- the alert receiver (a real HTTP server on loopback) -----------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    log = tmp_path / "alerts.jsonl"
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(password, AlertLog(log)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", password, log
    server.shutdown()
    server.server_close()


NOTIFICATION = {
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "PostgresqlDown", "pg_node": "pg2", "severity": "P0"},
            "annotations": {"summary": "PostgreSQL on pg2 does not answer"},
            "startsAt": "2026-11-28T04:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
        }
    ],
}


def test_the_receiver_logs_what_alertmanager_sends(receiver: tuple[str, Path, Path]) -> None:
    url, _password, log = receiver
    answer = httpx.post(f"{url}/page", json=NOTIFICATION, auth=("hastack", "s3cret"))
    assert answer.status_code == 200
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["receiver"] == "page" and record["status"] == "firing"
    assert record["alerts"][0]["labels"]["alertname"] == "PostgresqlDown"


def test_the_receiver_refuses_anyone_without_the_password(
    receiver: tuple[str, Path, Path],
) -> None:
    url, password, log = receiver
    assert httpx.post(f"{url}/page", json=NOTIFICATION).status_code == 401
    assert httpx.post(f"{url}/page", json=NOTIFICATION, auth=("hastack", "x")).status_code == 401
    assert httpx.post(f"{url}/page", json=NOTIFICATION, auth=("other", "s3cret")).status_code == 401
    # A rotated password is read at the next request: the old one is refused at once.
    password.write_text("new\n")
    assert (
        httpx.post(f"{url}/page", json=NOTIFICATION, auth=("hastack", "s3cret")).status_code == 401
    )
    assert httpx.post(f"{url}/nope", json=NOTIFICATION, auth=("hastack", "new")).status_code == 404
    bad = httpx.post(f"{url}/ticket", content=b"[1]", auth=("hastack", "new"))
    assert bad.status_code == 400
    assert not log.exists()


def test_basic_auth_parsing() -> None:
    def header(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert authorized(header("hastack:pw"), "pw")
    assert authorized(header("hastack:pw:with:colons"), "pw:with:colons")
    assert not authorized(header("hastack:pw"), "other")
    assert not authorized("Basic !!!", "pw")
    assert not authorized("Bearer x", "pw")
    assert not authorized(None, "pw")


# --- hastack's own metrics (written by the watcher) ------------------------------------


def test_hastack_metrics_carry_what_the_alert_rules_read(tmp_path: Path) -> None:
    _key, _cert = load_or_make_ca(tmp_path / "ca.pem", tmp_path / "ca.key", "demo")
    state = tmp_path / "scheduler.json"
    state.write_text(json.dumps({"last_backup_at": {"repo1": 1700000000.5, "repo2": "x"}}))
    text = render(
        HastackMetrics(
            heartbeat_at=1800000000.0,
            fences={"pg2": 2},
            stanza="demo",
            backups=backups_from_state(state),
            certificates=certificate_expiry(
                {"ca": str(tmp_path / "ca.pem"), "gone": str(tmp_path / "missing.pem")}
            ),
        )
    )
    assert "hastack_watcher_heartbeat_timestamp_seconds 1.8e+09" in text
    assert 'hastack_watcher_fences_total{pg_node="pg2"} 2.0' in text
    assert 'hastack_backup_last_success_timestamp_seconds{repo="repo1",stanza="demo"}' in text
    assert "repo2" not in text  # not a number: left out
    (line,) = [ln for ln in text.splitlines() if ln.startswith("hastack_certificate_expiry")]
    assert 'certificate="ca"' in line and float(line.split()[-1]) > 1.7e9
    rules = " ".join(a.expr for a in ALERTS)
    for name in (
        "hastack_watcher_heartbeat_timestamp_seconds",
        "hastack_watcher_fences_total",
        "hastack_backup_last_success_timestamp_seconds",
        "hastack_certificate_expiry_timestamp_seconds",
    ):
        assert name in rules and name in text


def test_unreadable_inputs_give_no_series(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    assert backups_from_state(tmp_path / "bad.json") == {}
    assert backups_from_state(tmp_path / "missing.json") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert backups_from_state(tmp_path / "list.json") == {}
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert certificate_expiry({"junk": str(tmp_path / "junk.pem")}) == {}


# --- Grafana dashboards -----------------------------------------------------------------


def test_every_dashboard_is_importable_json_with_a_query_per_panel() -> None:
    files = render_dashboards("demo")
    assert set(files) == {f"{d.uid}.json" for d in DASHBOARDS}
    uids = set()
    for text in files.values():
        model = json.loads(text)
        assert model["schemaVersion"] == 36 and model["uid"] not in uids
        uids.add(model["uid"])
        assert model["templating"]["list"][0]["type"] == "datasource"
        cells: set[tuple[int, int]] = set()
        for panel in model["panels"]:
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            assert panel["datasource"]["uid"] == "${datasource}"
            place = panel["gridPos"]
            assert place["x"] + place["w"] <= 24
            mine = {
                (x, y)
                for x in range(place["x"], place["x"] + place["w"])
                for y in range(place["y"], place["y"] + place["h"])
            }
            assert not mine & cells, panel["title"]  # no two panels overlap
            cells |= mine
        assert len({p["id"] for p in model["panels"]}) == len(model["panels"])


def test_dashboards_cover_every_layer_the_issue_names() -> None:
    titles = " ".join(d.title for d in DASHBOARDS)
    for layer in ("overview", "PostgreSQL", "Patroni", "PgBouncer", "HTTP", "Redis", "host"):
        assert layer in titles
    assert all(queries(d) for d in DASHBOARDS)


# --- alerts in drill reports ------------------------------------------------------------


def test_a_drill_lists_the_alerts_received_during_it() -> None:
    def line(at: str, status: str, name: str, node: str) -> str:
        labels = {"alertname": name, "severity": "P1", "pg_node": node}
        return json.dumps({"received_at": at, "alerts": [{"status": status, "labels": labels}]})

    lines = [
        line("2026-11-28T10:00:00+00:00", "firing", "Before", "pg1"),
        line("2026-11-28T10:00:20+00:00", "firing", "PostgresqlDown", "pg2"),
        line("2026-11-28T10:00:50+00:00", "resolved", "PostgresqlDown", "pg2"),
        "not json",
        line("2026-11-28T10:05:00+00:00", "firing", "After", "pg3"),
    ]
    wall0 = datetime(2026, 11, 28, 10, 0, 10, tzinfo=UTC).timestamp()
    # The drill ran from monotonic 100 to 160, monotonic 100 being wall0.
    found = alerts_between(lines, 100.0, 160.0, wall0 - 100.0)
    assert [(a["name"], a["state"], a["node"], round(a["t"], 1)) for a in found] == [
        ("PostgresqlDown", "firing", "pg2", 110.0),
        ("PostgresqlDown", "resolved", "pg2", 140.0),
    ]
