"""Drill reports: one run, repeated runs with median/p95/max, stored as JSON and HTML."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hastack.drills.metrics import summary


@dataclass
class WriterStats:
    acks: int
    errors: int
    write_gap_s: float
    rto_s: float | None
    error_kinds: dict[str, int] = field(default_factory=dict)
    """Most frequent error messages, with their counts."""


@dataclass
class DrillReport:
    scenario: str
    summary: str
    started_at: str
    passed: bool
    failure_reasons: list[str]
    write_gap_s: float
    """Largest gap between acknowledged writes through DATABASE_URL around the fault."""
    rto_s: float | None
    """Fault -> first write acknowledged through DATABASE_URL after that gap (None: never)."""
    rpo_lost_acked_writes: int
    split_brain: bool
    acked_writes: int
    errors: int
    """Client-visible errors during the drill (every writer, connects included)."""
    old_primary: str
    new_primary: str | None
    fencing: bool
    writers: dict[str, WriterStats]
    checker: dict[str, Any]
    expectations: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    """Events, `t` in seconds relative to the fault (negative: before)."""
    series: dict[str, Any]
    """Acks and errors per bucket, for the chart."""
    durations: dict[str, float | None] = field(default_factory=dict)
    report_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.rto_s is not None and math.isinf(self.rto_s):
            data["rto_s"] = None
        return data


def repeat_summary(scenario: str, runs: list[DrillReport]) -> dict[str, Any]:
    """`--repeat N`: every run, and median/p95/max of the timings."""
    return {
        "scenario": scenario,
        "runs": [r.to_dict() for r in runs],
        "summary": {
            "runs": len(runs),
            "passed": all(r.passed for r in runs),
            "write_gap_s": summary([r.write_gap_s for r in runs]),
            "rto_s": summary([r.rto_s for r in runs if r.rto_s is not None]),
            "rpo_lost_acked_writes": sum(r.rpo_lost_acked_writes for r in runs),
            "split_brain_runs": sum(1 for r in runs if r.split_brain),
            "errors": summary([float(r.errors) for r in runs]),
            "acked_writes": sum(r.acked_writes for r in runs),
        },
    }


def save(report: DrillReport, directory: Path, html: str) -> Path:
    """Write `<time>-<scenario>.json` and `.html` next to each other; return the JSON path."""
    stamp = report.started_at.replace(":", "").replace("-", "").split(".")[0]
    base = directory / f"{stamp}-{report.scenario}"
    report.report_path = str(base.with_suffix(".html"))
    base.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    base.with_suffix(".html").write_text(html)
    return base.with_suffix(".json")


def history(directory: Path) -> list[dict[str, Any]]:
    """Every stored report, oldest first (summary fields only)."""
    rows = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows.append(
            {
                "file": str(path),
                "scenario": data.get("scenario"),
                "started_at": data.get("started_at"),
                "passed": data.get("passed"),
                "write_gap_s": data.get("write_gap_s"),
                "rto_s": data.get("rto_s"),
                "rpo_lost_acked_writes": data.get("rpo_lost_acked_writes"),
                "split_brain": data.get("split_brain"),
                "errors": data.get("errors"),
                "old_primary": data.get("old_primary"),
                "new_primary": data.get("new_primary"),
            }
        )
    return rows
