"""benchmarks/drill_table.py: every run counts; one that never recovered shows as such."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "drill_table.py"


def table_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("drill_table", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(gap: float | None, rto: float | None, passed: bool = True) -> dict[str, Any]:
    return {
        "scenario": "node-loss",
        "fencing": True,
        "write_gap_s": gap,
        "rto_s": rto,
        "healthy_again_s": None if rto is None else rto + 8,
        "writers": {"url": {"errors": 1}, "direct": {"errors": 2}},
        "rpo_lost_acked_writes": 0,
        "split_brain": False,
        "passed": passed,
        "failure_reasons": [] if passed else ["error: steady writes not reached within 90 s"],
    }


def test_a_run_that_never_recovered_is_counted_not_dropped() -> None:
    t = table_module()
    runs = [run(2.0, 2.0) for _ in range(9)] + [run(None, None, passed=False)]
    line = t.row({"runs": runs})
    assert "| node-loss | 9/10 |" in line
    assert "2.00 / did not recover / did not recover" in line
    assert t.failures({"runs": runs}) == ["node-loss: error: steady writes not reached within 90 s"]


def test_medians_of_an_even_count_average_the_middle_runs() -> None:
    t = table_module()
    line = t.row({"runs": [run(1.0, 1.0), run(2.0, 2.0), run(3.0, 3.0), run(4.0, 4.0)]})
    assert "| 4/4 | 2.50 / 4.00 / 4.00 |" in line


def test_a_single_report_is_one_run() -> None:
    assert "| node-loss | 1/1 |" in table_module().row(run(1.5, 1.5))


def web_run(failed_posts: int, wrk: int | None, passed: bool = True) -> dict[str, Any]:
    expectations = [{"what": "no failed request (saw 0)", "ok": True}]
    if wrk is not None:
        expectations.append({"what": f"wrk: no non-2xx or socket error in {wrk} requests"})
    return {
        "scenario": "rolling-restart",
        "tier": "web",
        "write_gap_s": 0.2,
        "healthy_again_s": 7.0,
        "writers": {
            "http-get1": {"errors": 0},
            "http-post1": {"errors": failed_posts},
            "url": {"errors": 5},  # the SQL canary is not a web request
        },
        "expectations": expectations,
        "rpo_lost_acked_writes": 0,
        "split_brain": False,
        "passed": passed,
        "failure_reasons": [],
    }


def test_web_drills_get_their_own_columns() -> None:
    t = table_module()
    line = t.web_row({"runs": [web_run(0, 30_000), web_run(2, 40_000, passed=False)]})
    assert line.startswith("| rolling-restart | 1/2 | 0.20 / 0.20 / 0.20 | 7.00 / 7.00 / 7.00 |")
    assert "| 0 | 1 / 2 | 70,000 (2 runs) | 0 | 0 |" in line
