"""Every drill, for real, on the shared stack, at least once per test run: each must end with
the checker's verdict clean (no lost acknowledged write, no split brain, measured for web
drills too) and the stack healthy again by itself. Long faults are shortened with `--hold`
(their full length runs in the campaign, docs/drills.md). Timings are reported, never
asserted."""

from __future__ import annotations

import pytest

from hastack.drills.engine import run_drill
from hastack.drills.scenarios import SCENARIOS, Scenario
from hastack.errors import HastackError
from tests.integration.conftest import Stack
from tests.integration.drill_checks import assert_clean_and_healed, drill_report

SHORTER_HOLD_S = {
    "freeze-primary": 12.0,
    "etcd-quorum-loss": 10.0,
    "etcd-quorum-loss-no-failsafe": 10.0,
    "redis-down": 5.0,
    "overload": 20.0,
}


def run_drill_cli(
    stack: Stack, name: str, *extra: str, full_hold: bool = False
) -> dict[str, object]:
    hold = None if full_hold else SHORTER_HOLD_S.get(name)
    args = ["drill", "run", name, "--json", *extra, *(["--hold", str(hold)] if hold else [])]
    return drill_report(stack.run(*args, timeout_s=600))


RESTORED_BY_THE_OPERATOR = {"cluster-loss", "region-loss"}
"""Drills whose fault the stack cannot survive: the documented recovery runs in the drill
(region-loss runs against a standby cluster: test_95_standby.py)."""

RUN_ELSEWHERE = {"node-loss", "kill-patroni"}
"""Run with the same checks elsewhere: node-loss by test_23_dashboard.py while a browser
watches the dashboard, kill-patroni by test_35_self_heal.py from the installed copy."""

IN_THE_LAB = {"host-loss", "host-partition", "slow-link"}
"""Faults of a whole host: they run on simulated hosts (test_71_lab_stack.py)."""

SLOW_ONLY = {"partition-primary-lb", "etcd-quorum-loss-no-failsafe"}
"""Variants of a drill `make test` runs (partition-primary, etcd-quorum-loss): they run in
`make test-slow`, keeping `make test` near its 25 minutes."""


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n in SLOW_ONLY else n
        for n in SCENARIOS
        if n not in RESTORED_BY_THE_OPERATOR | RUN_ELSEWHERE | IN_THE_LAB
    ],
)
def test_every_drill_passes_and_the_stack_heals_itself(stack: Stack, name: str) -> None:
    assert_clean_and_healed(stack, run_drill_cli(stack, name))


def test_cluster_loss_comes_back_from_the_repository_losing_only_unarchived_writes(
    stack: Stack,
) -> None:
    report = run_drill_cli(stack, "cluster-loss")
    assert report["passed"] is True, report["failure_reasons"]
    checker = report["checker"]
    assert isinstance(checker, dict)
    assert checker["invariant_ok"] and checker["converged"] and not checker["duplicates"]
    assert report["split_brain"] is False
    expectations = report["expectations"]
    assert isinstance(expectations, list)
    rpo = next(e for e in expectations if str(e["what"]).startswith("RPO:"))
    assert rpo["ok"] is True, rpo
    assert report["healthy_again_s"] is not None
    code, status = stack.status()
    assert code == 0, status["problems"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHORTER_HOLD_S))
def test_long_drills_with_their_full_fault(stack: Stack, name: str) -> None:
    report = run_drill_cli(stack, name, full_hold=True)
    assert report["passed"] is True and report["healthy_again_s"] is not None


@pytest.mark.slow
def test_node_loss_without_the_watcher_waits_for_the_ttl_and_still_heals(stack: Stack) -> None:
    report = run_drill_cli(stack, "node-loss", "--no-fencing")
    assert report["passed"] is True and report["fencing"] is False
    assert float(report["write_gap_s"]) > stack.plan.spec.patroni.ttl_s / 2  # type: ignore[arg-type]


def test_a_web_drill_measures_split_brain_with_the_sql_canary(stack: Stack) -> None:
    report = run_drill_cli(stack, "app-instance-kill")
    writers = report["writers"]
    assert isinstance(writers, dict)
    assert writers["url"]["acks"] > 20 and writers["pinned"]["acks"] > 20
    assert any(name.startswith("http-post") for name in writers)
    events = [e["text"] for e in report["timeline"]]  # type: ignore[union-attr]
    assert any(t.startswith("app1: DOWN") for t in events), events


def test_a_run_that_errors_is_a_failed_run_with_its_reason(stack: Stack) -> None:
    def broken(_ctx: object) -> None:
        raise HastackError("the fault could not be injected (forced by the test)")

    scenario = Scenario("forced-error", "a fault that cannot be injected", inject=broken)
    report = run_drill(stack.hs, scenario)
    assert report.passed is False
    assert report.error == "the fault could not be injected (forced by the test)"
    assert any(
        r.startswith("error: the fault could not be injected") for r in report.failure_reasons
    )
    assert report.healthy_again_s is None
    assert stack.status()[0] == 0


def test_history_lists_the_reports(stack: Stack) -> None:
    result = stack.run("drill", "history", "--json")
    assert result.code == 0
    scenarios = {row["scenario"] for row in result.json()}
    assert {"crash-primary", "node-loss", "redis-down"} <= scenarios


def test_unknown_drill(stack: Stack) -> None:
    result = stack.run("drill", "run", "no-such-drill")
    assert result.code == 1 and "unknown drill 'no-such-drill'" in result.err


def test_a_host_drill_is_refused_on_one_machine_before_anything_is_touched(stack: Stack) -> None:
    result = stack.run("drill", "run", "host-loss", "--json")
    assert result.code == 1 and result.out == ""
    assert "runs in the lab only" in result.err and "hastack lab up" in result.err, result.err
