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
