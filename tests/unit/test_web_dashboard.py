"""hastack's web dashboard: what it makes of each source's answer, its login, its pages and
the drill reports it serves. Its live sources are exercised against a real stack in
tests/integration/test_23_dashboard.py."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hastack.render.monitoring import render_dashboard_config
from hastack.spec import StackSpec, derive_plan
from hastack.web import view
from hastack.web.dashboard import authorized, create_dashboard
from hastack.web.sources import DashboardConfig, Sources, read_report

CLUSTER = {
    "members": [
        {"name": "pg2", "role": "sync_standby", "state": "streaming", "timeline": 4, "lag": 0},
        {"name": "pg1", "role": "leader", "state": "running", "timeline": 4},
        {"name": "pg3", "role": "replica", "state": "starting", "timeline": 3, "lag": "unknown"},
    ]
}


def sample(value: float, **labels: str) -> dict[str, object]:
    return {"metric": labels, "value": [1795850000.0, str(value)]}


def test_the_topology_names_the_leader_and_every_members_role_timeline_and_lag() -> None:
    found = view.topology(CLUSTER)
    assert found["leader"] == "pg1"
    assert [(m["name"], m["role"], m["timeline"], m["lag_bytes"]) for m in found["members"]] == [
        ("pg1", "leader", 4, None),
        ("pg2", "sync_standby", 4, 0),
        ("pg3", "replica", 3, None),
    ]
    assert view.topology({"members": []}) == {"leader": None, "members": []}


def test_backends_pools_apps_and_backups_from_prometheus() -> None:
    status = [
        sample(0, proxy="web_app", server="app1", state="DOWN"),
        sample(1, proxy="web_app", server="app1", state="UP"),
        sample(1, proxy="pg_primary", server="pg2", state="DOWN"),
    ]
    assert view.backends(status) == [
        {"proxy": "pg_primary", "server": "pg2", "state": "DOWN"},
        {"proxy": "web_app", "server": "app1", "state": "UP"},
    ]
    pools = view.pools(
        {
            "client_active": [sample(4, database="app", user="app_a")],
            "client_waiting": [sample(2, database="app", user="app_a")],
        }
    )
    assert pools == [{"database": "app", "user": "app_a", "client_active": 4, "client_waiting": 2}]
    apps = view.apps([sample(0, app="app2", instance="a:1"), sample(1, app="app1", instance="b:1")])
    assert [(a["name"], a["up"]) for a in apps] == [("app1", True), ("app2", False)]
    backups = view.backups([sample(1000.0, repo="repo1")], now=4600.0)
    assert backups == [{"repo": "repo1", "at": 1000.0, "age_s": 3600}]


def test_alerts_most_severe_first_and_a_drill_summarised() -> None:
    active = [
        {"labels": {"alertname": "PatroniLeaderChanged", "severity": "P2", "pg_node": "pg2"}},
        {
            "labels": {"alertname": "PostgresqlDown", "severity": "P1", "pg_node": "pg1"},
            "annotations": {"summary": "PostgreSQL on pg1 does not answer"},
            "startsAt": "2026-11-28T08:00:00Z",
        },
    ]
    rows = view.alerts(active)
    assert [(r["name"], r["node"]) for r in rows] == [
        ("PostgresqlDown", "pg1"),
        ("PatroniLeaderChanged", "pg2"),
    ]
    drill = view.drill_summary(
        "20261128T072049-node-loss.json",
        {
            "scenario": "node-loss",
            "passed": True,
            "rto_s": 4.6,
            "alerts": [{"name": "A"}, {"name": "A"}],
        },
    )
    assert drill["passed"] and drill["alerts"] == ["A"] and drill["rto_s"] == 4.6
    assert view.series([{"values": [[1, "2"], [2, "NaN"], [3, "+Inf"], [4, "5"]]}]) == [
        [1.0, 2.0],
        [4.0, 5.0],
    ]
    assert view.series([]) == []


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_login_is_the_monitoring_users_in_constant_time() -> None:
    assert authorized(_basic("hastack", "s3cret"), "hastack", "s3cret")
    assert not authorized(_basic("hastack", "wrong"), "hastack", "s3cret")
    assert not authorized(_basic("admin", "s3cret"), "hastack", "s3cret")
    assert not authorized("Basic !!!", "hastack", "s3cret")
    assert not authorized("Bearer s3cret", "hastack", "s3cret")
    assert not authorized(None, "hastack", "s3cret")


@pytest.fixture
def config(tmp_path: Path) -> DashboardConfig:
    data = json.loads(render_dashboard_config(derive_plan(StackSpec())))
    (tmp_path / "password").write_text("s3cret\n")
    drills = tmp_path / "drills"
    drills.mkdir()
    (drills / "20261128T072049-node-loss.html").write_text("<html>report</html>")
    (drills / "20261128T072049-node-loss.json").write_text('{"scenario": "node-loss"}')
    os.symlink("/etc/shadow", drills / "20261128T072050-node-loss.html")
    data.update(password_file=str(tmp_path / "password"), drills_dir=str(drills))
    return DashboardConfig(**data)


def test_every_page_wants_the_login_and_carries_a_strict_policy(config: DashboardConfig) -> None:
    with TestClient(create_dashboard(config), base_url="https://testserver") as client:
        for path in ("/", "/api/state", "/dashboard.js", "/drills/20261128T072049-node-loss.html"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == 'Basic realm="hastack"'
        login = {"Authorization": _basic("hastack", "s3cret")}
        page = client.get("/", headers=login)
        assert page.status_code == 200 and 'id="leader"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/dashboard.js", headers=login).status_code == 200
        report = client.get("/drills/20261128T072049-node-loss.html", headers=login)
        assert report.status_code == 200 and report.text == "<html>report</html>"
        for bad in (
            "20261128T072050-node-loss.html",
            "..%2Fpassword",
            "20261128T072049-node-loss.json",
        ):
            assert client.get(f"/drills/{bad}", headers=login).status_code == 404, bad


def test_a_report_is_read_only_by_its_name_and_never_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "20261128T072049-node-loss.json").write_text("{}")
    os.symlink("/etc/hostname", tmp_path / "20261128T072051-node-loss.json")
    assert read_report(tmp_path, "20261128T072049-node-loss.json") == b"{}"
    assert read_report(tmp_path, "20261128T072051-node-loss.json") is None
    assert read_report(tmp_path, "../hostname") is None


def test_drill_reports_newest_first_read_once_and_only_real_ones(config: DashboardConfig) -> None:
    drills = Path(config.drills_dir)
    (drills / "20261128T080000-dcs-blip.json").write_text('{"scenario": "dcs-blip"}')
    (drills / "20261128T090000-broken.json").write_text("{not json")
    (drills / "notes.json").write_text('{"scenario": "not a report"}')
    sources = Sources(config)
    found = sources.drill_reports()
    assert [(n, r["scenario"]) for n, r in found] == [
        ("20261128T080000-dcs-blip.json", "dcs-blip"),
        ("20261128T072049-node-loss.json", "node-loss"),
    ]
    # Reports are written once: a second look does not read them again.
    (drills / "20261128T080000-dcs-blip.json").write_text('{"scenario": "changed"}')
    assert sources.drill_reports()[0][1]["scenario"] == "dcs-blip"
    assert [n for n, _ in sources.drill_reports(newest=2)] == ["20261128T080000-dcs-blip.json"]
