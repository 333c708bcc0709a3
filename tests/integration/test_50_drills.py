"""The drills, for real, on the shared stack: each must end with the checker's verdict
clean (no lost acknowledged write, no split brain) and the stack healthy again. Timings are
reported, never asserted; the long scenarios are marked slow (`make test-slow`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hastack.drills.scenarios import DEFAULT_TEST_SCENARIOS, SCENARIOS
from tests.integration.conftest import Stack

SLOW = [name for name in SCENARIOS if name not in DEFAULT_TEST_SCENARIOS]


def run_drill(stack: Stack, name: str) -> dict[str, object]:
    result = stack.run("drill", "run", name, "--json", timeout_s=600)
    report: dict[str, object] = json.loads(result.out)
    assert result.code == 0, (report.get("failure_reasons"), result.err[-2000:])
    return report


def assert_clean(report: dict[str, object]) -> None:
    assert report["passed"] is True, report["failure_reasons"]
    assert report["rpo_lost_acked_writes"] == 0
    assert report["split_brain"] is False
    assert int(report["acked_writes"]) > 100  # type: ignore[call-overload]
    checker = report["checker"]
    assert isinstance(checker, dict)
    assert checker["invariant_ok"] and checker["converged"]


@pytest.mark.parametrize("name", DEFAULT_TEST_SCENARIOS)
def test_default_drills(stack: Stack, name: str) -> None:
    report = run_drill(stack, name)
    assert_clean(report)
    if name in ("switchover", "node-loss"):
        assert report["new_primary"] != report["old_primary"]
    if name == "kill-postmaster":
        assert report["new_primary"] == report["old_primary"]
    assert Path(str(report["report_path"])).exists()
    assert stack.status()[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_slow_drills(stack: Stack, name: str) -> None:
    assert_clean(run_drill(stack, name))
    assert stack.status()[0] == 0


def test_history_lists_the_reports(stack: Stack) -> None:
    result = stack.run("drill", "history", "--json")
    assert result.code == 0
    scenarios = {row["scenario"] for row in result.json()}
    assert set(DEFAULT_TEST_SCENARIOS) <= scenarios


def test_unknown_drill(stack: Stack) -> None:
    result = stack.run("drill", "run", "no-such-drill")
    assert result.code == 1 and "unknown drill 'no-such-drill'" in result.err
