"""Turn a drill's raw history into its report: metrics, expectations, timeline, chart series.
Pure: every figure comes from recorded timestamps."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hastack.drills.alerting import alert_expectations
from hastack.drills.backup_failover import backup_failover_expectations
from hastack.drills.checker import Verdict
from hastack.drills.cluster_loss import cluster_loss_expectations
from hastack.drills.events import Ack, History
from hastack.drills.http_workload import NO_DB_CLIENT
from hastack.drills.metrics import buckets, error_kinds, failures_between, largest_gap
from hastack.drills.overload import overload_expectations
from hastack.drills.pitr import pitr_expectations
from hastack.drills.rebuild import rebuild_expectations
from hastack.drills.region_loss import region_loss_expectations
from hastack.drills.report import DrillReport, WriterStats
from hastack.drills.scenarios import Expectation, Scenario
from hastack.spec.plan import StackPlan

BUCKET_S = 0.1
CHART_LEAD_S = 3.0


@dataclass
class PhaseTimes:
    """Monotonic seconds at which each phase of a drill was reached (None: never)."""

    start: float
    t0: float | None = None
    injected: float | None = None
    recovered: float | None = None
    healed: float | None = None
    healthy: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class ReportInput:
    plan: StackPlan
    scenario: Scenario
    history: History
    verdict: Verdict
    times: PhaseTimes
    started_at: str
    old_primary: str | None
    new_primary: str | None
    fencing: bool
    fencer_marks: list[dict[str, Any]]
    timelines: dict[str, int | None]
    alert_marks: list[dict[str, Any]] = field(default_factory=list)
    """Alerts received during the drill (`alerts_between`)."""
    errors: list[str] = field(default_factory=list)
    """Why the run could not complete (the run failed)."""
    notes: list[str] = field(default_factory=list)
    """Promises not kept that are not errors (not healthy again in time)."""
    lost_work_orders: list[int] = field(default_factory=list)
    volume: dict[str, int] = field(default_factory=dict)
    acks_prefix: str = "url"


def build_report(r: ReportInput) -> DrillReport:
    times, history = r.times, r.history
    t0 = times.t0 if times.t0 is not None else times.start
    end = times.end if times.end is not None else t0
    reached_fault = times.t0 is not None
    writers = _writer_stats(history, t0, end)
    headline = largest_gap(history.acks_of_prefix(r.acks_prefix), t0, end)
    expectations = _expectations(r, t0, end) if reached_fault else []
    reasons = [f"error: {e}" for e in r.errors]
    reasons += list(r.verdict.problems)
    if r.lost_work_orders:
        reasons.append(f"{len(r.lost_work_orders)} acknowledged work orders missing")
    reasons += r.notes
    reasons += [f"expectation not met: {e['what']}" for e in expectations if not e["ok"]]
    errors = sum(1 for f in history.failures if t0 <= f.t <= end)
    return DrillReport(
        scenario=r.scenario.name,
        summary=r.scenario.summary,
        started_at=r.started_at,
        passed=not reasons,
        failure_reasons=reasons,
        write_gap_s=headline.gap_s if reached_fault else None,
        rto_s=None if not reached_fault or math.isinf(headline.rto_s) else headline.rto_s,
        rpo_lost_acked_writes=r.verdict.rpo_lost_acked_writes + len(r.lost_work_orders),
        split_brain=r.verdict.split_brain,
        acked_writes=len(history.acks),
        errors=errors,
        old_primary=r.old_primary,
        new_primary=r.new_primary,
        fencing=r.fencing,
        writers=writers,
        checker={
            "lost_acked_writes": r.verdict.lost_acked_writes,
            "lost_acked_transfers": r.verdict.lost_acked_transfers,
            "lost_acked_work_orders": r.lost_work_orders[:20],
            "duplicates": r.verdict.duplicates,
            "invariant_ok": r.verdict.invariant_ok,
            "converged": r.verdict.converged,
            "split_brain": r.verdict.split_brain,
            "dual_primary_samples": r.verdict.dual_primary_samples,
            "timelines": r.timelines,
            "reads_ok": history.reads_ok,
            "reads_failed": history.reads_failed,
            "load": r.volume,
            "problems": r.verdict.problems,
        },
        expectations=expectations,
        timeline=timeline_events(history, r.fencer_marks, t0, r.alert_marks),
        alerts=[
            {**a, "t": round(a["t"] - t0, 3), "starts_at": round(a["starts_at"] - t0, 3)}
            for a in r.alert_marks
        ],
        series=_series(history, t0, end),
        tier=r.scenario.tier,
        error="; ".join(r.errors) or None,
        healthy_again_s=_since(times.healthy, t0) if reached_fault else None,
        durations={
            name: _since(getattr(times, name), t0)
            for name in ("recovered", "healed", "healthy")
            if getattr(times, name) is not None
        },
    )


def _since(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 3)


def _writer_stats(history: History, t0: float, end: float) -> dict[str, WriterStats]:
    names = sorted({a.writer for a in history.acks} | {f.writer for f in history.failures})
    stats = {}
    for name in names:
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


def _expectations(r: ReportInput, t0: float, end: float) -> list[dict[str, Any]]:
    expect: Expectation = r.scenario.expect
    history, old, new = r.history, r.old_primary, r.new_primary
    found = []
    if expect.leader_changes is True:
        found.append(
            {"what": f"a new leader takes over from {old}", "ok": new is not None and new != old}
        )
    if expect.leader_changes is False:
        found.append({"what": f"{old} stays the leader", "ok": new == old})
    if expect.no_url_errors:
        errors = failures_between(history.failures, "url", t0, end)
        found.append({"what": f"no error through DATABASE_URL (saw {errors})", "ok": errors == 0})
    if expect.leader_stays_writable:
        demoted = [
            s
            for s in history.samples
            if s.node == old and t0 <= s.t_start <= end and s.role != "primary"
        ]
        found.append({"what": f"{old} never stops being primary (no demotion)", "ok": not demoted})
    http_failures = [
        f for f in history.failures if f.writer.startswith("http-") and t0 <= f.t <= end
    ]
    if expect.zero_failed_reads:
        reads = sum(1 for f in http_failures if f.writer.startswith("http-get"))
        found.append({"what": f"no failed GET (saw {reads})", "ok": reads == 0})
    if expect.zero_failed_requests:
        failed = len(http_failures)
        found.append({"what": f"no failed request (saw {failed})", "ok": failed == 0})
    if expect.instances_stay_in_rotation:
        down = sorted(
            {
                m.text.split(":")[0]
                for m in history.marks
                if m.kind == "haproxy" and t0 <= m.t <= end and m.text.endswith(": DOWN")
            }
        )
        found.append(
            {
                "what": f"no app instance left rotation (marked down: {down or 'none'})",
                "ok": not down,
            }
        )
    if expect.no_database_requests_ok:
        no_db_failed = [f for f in http_failures if f.writer == NO_DB_CLIENT]
        served = sum(1 for a in history.acks if a.writer == NO_DB_CLIENT and t0 <= a.t_end <= end)
        found.append(
            {
                "what": (
                    f"requests that need no database kept succeeding ({served} served, "
                    f"{len(no_db_failed)} failed)"
                ),
                "ok": not no_db_failed and served > 0,
            }
        )
    if expect.load_shed_by_haproxy:
        admitted = [
            (a.t_end - a.t_start) * 1000
            for a in history.acks
            if a.writer.startswith("http-get") and t0 <= a.t_end <= end
        ]
        found += overload_expectations(
            r.plan, history.facts.get("overload", {}), http_failures, admitted
        )
    if expect.pitr_exact:
        found += pitr_expectations(history.facts)
    if expect.rebuilt_from_repository:
        found += rebuild_expectations(history.facts)
    if expect.backup_survives_failover:
        gap = largest_gap(history.acks_of_prefix(r.acks_prefix), t0, end)
        found += backup_failover_expectations(history.facts, gap.gap_s)
    if expect.restored_within_archive_bound:
        found += cluster_loss_expectations(
            r.plan,
            history,
            set(r.verdict.lost_acked_writes),
            set(r.verdict.lost_acked_transfers),
        )
    if expect.promoted_within_lag:
        found += region_loss_expectations(
            r.plan,
            history,
            set(r.verdict.lost_acked_writes),
            set(r.verdict.lost_acked_transfers),
        )
    if expect.alerts.any and r.plan.monitoring_enabled:
        found += alert_expectations(expect.alerts, r.alert_marks, t0)
    if r.volume:
        bad = r.volume.get("non_2xx", 0) + r.volume.get("socket_errors", 0)
        total = r.volume.get("requests", 0)
        found.append(
            {"what": f"wrk: no non-2xx or socket error in {total} requests", "ok": bad == 0}
        )
    return found


def alerts_between(
    lines: list[str], start: float, end: float, offset: float
) -> list[dict[str, Any]]:
    """Alerts from the receiver's log (JSON lines) received between `start` and `end`
    (monotonic seconds; wall = monotonic + `offset`): name, severity, state, node, `t`."""
    found = []
    for line in lines:
        try:
            record = json.loads(line)
            received = datetime.fromisoformat(record["received_at"]).timestamp() - offset
        except (ValueError, KeyError, TypeError):
            continue
        if not start <= received <= end:
            continue
        for alert in record.get("alerts") or []:
            labels = alert.get("labels") or {}
            starts = _instant(alert.get("startsAt"))
            found.append(
                {
                    "t": received,
                    "starts_at": received if starts is None else starts - offset,
                    "name": labels.get("alertname", "?"),
                    "severity": labels.get("severity", ""),
                    "state": alert.get("status", ""),
                    "node": labels.get("pg_node") or labels.get("member") or labels.get("app"),
                }
            )
    return found


def _instant(text: object) -> float | None:
    """Epoch seconds of Alertmanager's RFC 3339 time (nanoseconds cut to microseconds)."""
    if not isinstance(text, str):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def timeline_events(
    history: History,
    fencer_marks: list[dict[str, Any]],
    t0: float,
    alert_marks: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    events = [
        {"t": round(m.t - t0, 3), "kind": m.kind, "text": m.text, "node": m.node}
        for m in history.marks
    ]
    events += [
        {"t": round(m["t"] - t0, 3), "kind": "fencer", "text": m["text"], "node": m["node"]}
        for m in fencer_marks
    ]
    events += [
        {
            "t": round(a["t"] - t0, 3),
            "kind": "alert",
            "text": f"{a['name']} ({a['severity']}) {a['state']}",
            "node": a["node"],
        }
        for a in alert_marks or []
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
    acks: list[Ack] = list(history.acks)
    return {
        "bucket_s": BUCKET_S,
        "start_s": -CHART_LEAD_S,
        "acks": buckets([a.t_end for a in acks], start, end, BUCKET_S),
        "errors": buckets([f.t for f in history.failures], start, end, BUCKET_S),
    }
