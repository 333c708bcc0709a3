"""The region-loss drill: the primary stack's whole region lost under write load (every
process of it frozen at one instant, then killed: supervisord, the watcher, every node and
service), then the documented way on: `hastack promote-standby` on the standby cluster.

It runs against the standby cluster's spec. The writers use one multi-host connection string
(the primary's PgBouncer first, the standby's second), as an application deployed in both
regions would, so they follow the promotion by themselves. The standby replicates
asynchronously: what the primary acknowledged but had not yet shipped is lost. The lag the
primary reported just before the fault bounds it: a missing write acknowledged earlier than
that lag (+ a margin for the link's latency) fails the run.
"""

from __future__ import annotations

import signal
from typing import Any

import psutil

from hastack.drills.events import History
from hastack.drills.faults import DrillContext, signal_all
from hastack.errors import HastackError
from hastack.ops.promote import promote_standby
from hastack.runtime.orphans import stack_processes
from hastack.runtime.stack import Stack
from hastack.runtime.standby import standby_lag
from hastack.spec import load_spec
from hastack.spec.plan import StackPlan

FACTS = "region_loss"
LOSS_MARGIN_S = 1.0
"""Beyond the reported replay lag: the lag is sampled, and WAL still in flight on the link."""
WRITABLE_TARGET_S = 15.0
"""The issue's target: promoted and writable within this of the request."""


def primary_stack(standby: Stack) -> Stack:
    """The stack a standby cluster replicates from, as its spec names it."""
    sc = standby.plan.spec.standby_cluster
    if sc is None or standby.plan.standby is None:
        raise HastackError(
            f"stack {standby.name!r} is not a standby cluster: region-loss runs against a "
            "standby cluster's spec",
            "hastack -c DR_SPEC drill run region-loss (docs/backups.md#standby-cluster)",
        )
    return Stack(load_spec(sc.primary).plan, clock=standby.clock)


def loss_bound_s(plan: StackPlan, lag_s: float | None) -> float:
    latency = plan.standby.latency_ms / 1000 if plan.standby else 0.0
    return (lag_s or 0.0) + 2 * latency + LOSS_MARGIN_S


def _region_pids(primary: Stack) -> list[int]:
    pids = [p.pid for p in stack_processes(primary.identity)]
    daemon = primary.supervisor.pid()
    if daemon is not None and psutil.pid_exists(daemon):
        pids.append(daemon)
    return pids


def lose_the_primary_region(ctx: DrillContext) -> None:
    """Read the lag the primary reports, then freeze every process of the primary stack
    (nothing commits after that instant), and kill them all."""
    if ctx.source is None:
        raise HastackError("region-loss needs the primary stack", "hastack status")
    primary, history, clock = ctx.source, ctx.history, ctx.stack.clock
    facts: dict[str, Any] = history.facts.setdefault(FACTS, {})
    leader = ctx.stack.leader()
    if leader is not None:
        lag = standby_lag(ctx.stack, leader)
        facts.update(lag_bytes=lag.lag_bytes, replay_lag_s=lag.replay_lag_s, lag_error=lag.error)
    pids = _region_pids(primary)
    signal_all(pids, signal.SIGSTOP)
    t_fault = clock.monotonic()
    history.mark("fault", f"region of {primary.name} lost: every process frozen, then killed")
    facts["t_fault"] = t_fault
    ctx.stack.until(
        lambda: _killed(primary),
        what=f"every process of {primary.name} gone",
        timeout_s=30,
        interval_s=0.1,
    )


def _killed(primary: Stack) -> bool:
    pids = _region_pids(primary)
    signal_all(pids, signal.SIGKILL)
    return not pids


def promote_the_standby(ctx: DrillContext) -> None:
    """What an operator runs: `hastack promote-standby`."""
    history, clock = ctx.history, ctx.stack.clock
    facts: dict[str, Any] = history.facts.setdefault(FACTS, {})
    history.mark("note", "hastack promote-standby")
    asked = clock.monotonic()
    try:
        result = promote_standby(ctx.stack)
    except HastackError as exc:
        facts["error"] = exc.what
        raise
    writable_at = asked + result.writable_s
    history.mark("note", f"{result.leader} writable (promoted)", t=writable_at)
    facts.update(
        promote_writable_s=result.writable_s,
        fault_to_writable_s=round(writable_at - facts.get("t_fault", asked), 2),
        promote_total_s=result.elapsed_s,
        new_leader=result.leader,
    )


def loss_allowed_after(plan: StackPlan, history: History) -> float | None:
    """Writes acknowledged at or after this may be missing: those within the reported lag
    (+ margin) of the fault. None: the fault never happened."""
    facts = history.facts.get(FACTS) or {}
    t_fault = facts.get("t_fault")
    if t_fault is None:
        return None
    return float(t_fault) - loss_bound_s(plan, facts.get("replay_lag_s"))


def region_loss_expectations(
    plan: StackPlan, history: History, lost_writes: set[int], lost_transfers: set[int]
) -> list[dict[str, Any]]:
    """Pure: promoted within the target, and the acknowledged writes lost within the lag."""
    facts = history.facts.get(FACTS) or {}
    found = []
    writable = facts.get("promote_writable_s")
    found.append(
        {
            "what": f"the standby promoted and writable {writable} s after the request "
            f"({facts.get('fault_to_writable_s')} s after the fault; target "
            f"{WRITABLE_TARGET_S:g} s)"
            if writable is not None
            else "the standby promoted",
            "ok": writable is not None and writable <= WRITABLE_TARGET_S,
        }
    )
    t_fault = facts.get("t_fault")
    if t_fault is None:
        return found
    lost = history.lost_sql_acks(lost_writes, lost_transfers)
    span = round(float(t_fault) - min(a.t_end for a in lost), 3) if lost else 0.0
    bound = loss_bound_s(plan, facts.get("replay_lag_s"))
    # Acknowledged after the fault means acknowledged by the promoted standby: never lost.
    late = [a for a in lost if a.t_end > float(t_fault)]
    facts.update(lost_acked=len(lost), lost_span_s=span, lost_after_fault=len(late))
    found.append(
        {
            "what": f"RPO: {len(lost)} acknowledged writes lost, acknowledged at most {span} s "
            f"before the fault (bound: the replay lag the primary reported, "
            f"{facts.get('replay_lag_s')} s, {facts.get('lag_bytes')} bytes, + the link "
            f"+ {LOSS_MARGIN_S:g} s = {bound:.2f} s)",
            "ok": span <= bound and not late,
        }
    )
    if late:
        found.append(
            {
                "what": f"{len(late)} writes acknowledged after the fault (by the promoted "
                "standby) are missing",
                "ok": False,
            }
        )
    return found
