"""What every drill run in the integration tests must show: the checker's verdict clean (no
lost acknowledged write, no split brain), the stack healthy again by itself, the report
written. Shared by test_50 (every drill), test_23 (node-loss, watched in a browser) and
test_35 (kill-patroni, from the installed copy)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import Result, Stack


def drill_report(result: Result) -> dict[str, object]:
    report: dict[str, object] = json.loads(result.out)
    assert result.code == 0, (report.get("failure_reasons"), result.err[-3000:])
    return report


def assert_clean_and_healed(stack: Stack, report: dict[str, object]) -> None:
    assert report["passed"] is True, report["failure_reasons"]
    assert report["error"] is None
    assert report["rpo_lost_acked_writes"] == 0
    assert report["split_brain"] is False
    checker = report["checker"]
    assert isinstance(checker, dict)
    assert checker["invariant_ok"] and checker["converged"]
    assert report["healthy_again_s"] is not None, "the stack did not heal by itself"
    assert Path(str(report["report_path"])).exists()
    code, status = stack.status()
    assert code == 0, status["problems"]
