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
    write_gap_s: float | None
    """Largest gap between acknowledged writes around the fault (DATABASE_URL's for the data
    tier, the HTTP POSTs for the web tier); None when the run never reached the fault."""
    rto_s: float | None
    """Fault -> first write acknowledged after that gap (None: writes never resumed)."""
    rpo_lost_acked_writes: int
    split_brain: bool
    """Measured for every drill: two primaries acknowledging writes in turn."""
    acked_writes: int
    errors: int
    """Client-visible errors during the drill (every writer, connects included)."""
    old_primary: str | None
    new_primary: str | None
    fencing: bool
    writers: dict[str, WriterStats]
    checker: dict[str, Any]
    expectations: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    """Events, `t` in seconds relative to the fault (negative: before)."""
    series: dict[str, Any]
    """Acks and errors per bucket, for the chart."""
    tier: str = "data"
    error: str | None = None
    """Why the run could not complete (it counts as failed), or None."""
    healthy_again_s: float | None = None
    """Fault -> the stack healthy again with every node streaming (None: not within the
    deadline, or never reached)."""
    durations: dict[str, float | None] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    """Alerts Alertmanager sent during the drill: name, severity, state (firing or
    resolved), node, `t` seconds after the fault. Those that fire after the stack is healthy
    again (a rule's `for:` outlasting the fault) are not in it."""
    report_path: str | None = None

    @property
    def recovered(self) -> bool:
        return self.rto_s is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.rto_s is not None and math.isinf(self.rto_s):
            data["rto_s"] = None
        return data


def repeat_summary(scenario: str, runs: list[DrillReport]) -> dict[str, Any]:
    """`--repeat N`: every run, and median/p95/max of the timings over *every* run: one that
    failed or never recovered counts (as "did not recover"), it is never dropped."""
    passed = sum(1 for r in runs if r.passed)
    return {
        "scenario": scenario,
        "runs": [r.to_dict() for r in runs],
        "summary": {
            "runs": len(runs),
            "passed": passed,
            "all_passed": passed == len(runs),
            "errored": sum(1 for r in runs if r.error),
            "write_gap_s": summary([r.write_gap_s for r in runs]),
            "rto_s": summary([r.rto_s for r in runs]),
            "healthy_again_s": summary([r.healthy_again_s for r in runs]),
            "rpo_lost_acked_writes": sum(r.rpo_lost_acked_writes for r in runs),
            "split_brain_runs": sum(1 for r in runs if r.split_brain),
            "errors": summary([float(r.errors) for r in runs]),
            "acked_writes": sum(r.acked_writes for r in runs),
            "failure_reasons": sorted({reason for r in runs for reason in r.failure_reasons}),
        },
    }


def save(report: DrillReport, directory: Path, html: str) -> Path:
    """Write `<time>-<scenario>.json` and `.html` next to each other; return the JSON path."""
    stamp = report.started_at.replace(":", "").replace("-", "").split(".")[0].split("+")[0]
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
                **{
                    k: data.get(k)
                    for k in (
                        "scenario",
                        "started_at",
                        "passed",
                        "error",
                        "write_gap_s",
                        "rto_s",
                        "healthy_again_s",
                        "rpo_lost_acked_writes",
                        "split_brain",
                        "errors",
                        "old_primary",
                        "new_primary",
                    )
                },
            }
        )
    return rows
