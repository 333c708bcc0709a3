"""Web-tier drills on the shared stack: the clients' view of faults behind HAProxy."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Stack


def run(stack: Stack, name: str) -> dict[str, object]:
    result = stack.run("drill", "run", name, "--json", timeout_s=600)
    report: dict[str, object] = json.loads(result.out)
    assert result.code == 0, (report.get("failure_reasons"), result.err[-2000:])
    assert report["passed"] is True and report["rpo_lost_acked_writes"] == 0
    return report


def test_killed_app_instance_costs_no_read(stack: Stack) -> None:
    report = run(stack, "app-instance-kill")
    events = [e["text"] for e in report["timeline"]]  # type: ignore[union-attr]
    assert any(t.startswith("app1: DOWN") for t in events), events
    assert stack.status()[0] == 0


def test_rolling_restart_drill_counts_no_failure_at_volume(stack: Stack) -> None:
    report = run(stack, "rolling-restart")
    load = report["checker"]["load"]  # type: ignore[index]
    assert load["requests"] > 1000 and load["non_2xx"] == 0 and load["socket_errors"] == 0


def test_haproxy_reloads_fail_no_request(stack: Stack) -> None:
    report = run(stack, "haproxy-reload")
    load = report["checker"]["load"]  # type: ignore[index]
    assert load["requests"] > 1000 and load["non_2xx"] == 0 and load["socket_errors"] == 0
    reloads = [e for e in report["timeline"] if "HAProxy reload" in e["text"]]  # type: ignore[union-attr]
    assert len(reloads) == 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["redis-down", "db-failover-under-http-load"])
def test_slow_web_drills(stack: Stack, name: str) -> None:
    run(stack, name)
    assert stack.status()[0] == 0
