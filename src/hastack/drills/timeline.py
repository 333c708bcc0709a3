"""Turn a drill's raw history into its report: metrics, expectations, timeline, chart series."""

from __future__ import annotations

import math
from typing import Any

from hastack.drills.checker import Verdict
from hastack.drills.events import History
from hastack.drills.metrics import buckets, error_kinds, failures_between, largest_gap
from hastack.drills.report import DrillReport, WriterStats
from hastack.drills.scenarios import Scenario
from hastack.spec.plan import StackPlan

BUCKET_S = 0.1
CHART_LEAD_S = 3.0


def build_report(
    *,
    plan: StackPlan,
    scenario: Scenario,
    history: History,
    verdict: Verdict,
    times: dict[str, float],
    started_at: str,
    old_primary: str,
    new_primary: str | None,
    fencing: bool,
    fencer_marks: list[dict[str, Any]],
    timelines: dict[str, int | None],
) -> DrillReport:
    t0, end = times["t0"], times["end"]
    writers = _writer_stats(history, t0, end)
    url = writers["url"]
    expectations = _expectations(scenario, history, old_primary, new_primary, t0, end)
    reasons = list(verdict.problems)
    reasons += [f"expectation not met: {e['what']}" for e in expectations if not e["ok"]]
    if times.get("unhealthy"):
        reasons.append("the stack was not healthy again before the deadline")
    errors = sum(1 for f in history.failures if t0 <= f.t <= end)
    return DrillReport(
        scenario=scenario.name,
        summary=scenario.summary,
        started_at=started_at,
        passed=not reasons,
        failure_reasons=reasons,
        write_gap_s=url.write_gap_s,
        rto_s=url.rto_s,
        rpo_lost_acked_writes=verdict.rpo_lost_acked_writes,
        split_brain=verdict.split_brain,
        acked_writes=len(history.acks),
        errors=errors,
        old_primary=old_primary,
        new_primary=new_primary,
        fencing=fencing,
        writers=writers,
        checker={
            "lost_acked_writes": verdict.lost_acked_writes,
            "lost_acked_transfers": verdict.lost_acked_transfers,
            "duplicates": verdict.duplicates,
            "invariant_ok": verdict.invariant_ok,
            "converged": verdict.converged,
            "split_brain": verdict.split_brain,
            "dual_primary_samples": verdict.dual_primary_samples,
            "timelines": timelines,
            "reads_ok": history.reads_ok,
            "reads_failed": history.reads_failed,
            "problems": verdict.problems,
        },
        expectations=expectations,
        timeline=timeline_events(history, fencer_marks, t0),
        series=_series(history, t0, end),
        durations={
            name: round(times[name] - t0, 3)
            for name in ("recovered", "healed", "healthy")
            if name in times
        },
    )


def _writer_stats(history: History, t0: float, end: float) -> dict[str, WriterStats]:
    names = sorted({a.writer for a in history.acks} | {f.writer for f in history.failures})
    stats = {}
    for name in [*(["url"] if "url" not in names else []), *names]:
        if name == "ro":
            continue
        acks = history.acks_of(name)
        gap = largest_gap(acks, t0, end)
        stats[name] = WriterStats(
            acks=len(acks),
            errors=failures_between(history.failures, name, t0, end),
            write_gap_s=gap.gap_s,
            rto_s=None if math.isinf(gap.rto_s) else gap.rto_s,
            error_kinds=error_kinds(history.failures, name, t0, end),
        )
    return stats


def _expectations(
    scenario: Scenario,
    history: History,
    old_primary: str,
    new_primary: str | None,
    t0: float,
    end: float,
) -> list[dict[str, Any]]:
    expect = scenario.expect
    found = []
    if expect.leader_changes is True:
        found.append(
            {
                "what": f"a new leader takes over from {old_primary}",
                "ok": new_primary is not None and new_primary != old_primary,
            }
        )
    if expect.leader_changes is False:
        found.append({"what": f"{old_primary} stays the leader", "ok": new_primary == old_primary})
    if expect.no_url_errors:
        errors = failures_between(history.failures, "url", t0, end)
        found.append({"what": f"no error through DATABASE_URL (saw {errors})", "ok": errors == 0})
    if expect.leader_stays_writable:
        demoted = [
            s
            for s in history.samples
            if s.node == old_primary and t0 <= s.t_start <= end and s.role != "primary"
        ]
        found.append(
            {
                "what": f"{old_primary} never stops being primary (no demotion)",
                "ok": not demoted,
            }
        )
    return found


def timeline_events(
    history: History, fencer_marks: list[dict[str, Any]], t0: float
) -> list[dict[str, Any]]:
    events = [
        {"t": round(m.t - t0, 3), "kind": m.kind, "text": m.text, "node": m.node}
        for m in history.marks
    ]
    events += [
        {"t": round(m["t"] - t0, 3), "kind": "fencer", "text": m["text"], "node": m["node"]}
        for m in fencer_marks
    ]
    events += _error_spans(history, t0)
    return sorted(events, key=lambda e: e["t"])


def _error_spans(history: History, t0: float) -> list[dict[str, Any]]:
    """The first and last error of each writer after the fault (not every one)."""
    spans = []
    by_writer: dict[str, list[float]] = {}
    for f in history.failures:
        if f.t >= t0:
            by_writer.setdefault(f.writer, []).append(f.t)
    for writer, times in sorted(by_writer.items()):
        first, last = min(times), max(times)
        spans.append(
            {
                "t": round(first - t0, 3),
                "kind": "errors",
                "text": f"{writer}: {len(times)} errors until {last - t0:.2f} s",
                "node": None,
            }
        )
    return spans


def _series(history: History, t0: float, end: float) -> dict[str, Any]:
    start = t0 - CHART_LEAD_S
    return {
        "bucket_s": BUCKET_S,
        "start_s": -CHART_LEAD_S,
        "acks": buckets([a.t_end for a in history.acks], start, end, BUCKET_S),
        "errors": buckets([f.t for f in history.failures], start, end, BUCKET_S),
    }
