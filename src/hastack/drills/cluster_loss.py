"""The cluster-loss drill: every node lost at once under write load (their processes killed,
their PostgreSQL and etcd data directories gone), then the documented way back: `hastack
restore --target cluster --latest`, from the backup repository.

The stack cannot heal this by itself, and must not try: the watcher is held off the lost
nodes' programs (it would otherwise start Patroni on empty directories, which would create a
new, empty cluster). What the drill proves is the recovery and its numbers: RTO from the fault
until writes flow again and until every node streams; RPO as the acknowledged writes lost and
how long before the fault they were acknowledged. The WAL not yet in the repository is what a
lost cluster loses: the archive state is read from the leader just before the fault, and a
missing write acknowledged before the last segment was archived fails the run; the span of
what was lost must stay within `archive_timeout` (+ a margin).
"""

from __future__ import annotations

import shutil
import signal
from typing import Any

import psutil

from hastack.drills.events import History
from hastack.drills.faults import DrillContext, signal_all
from hastack.errors import HastackError
from hastack.ops.backup import archive_state
from hastack.ops.cluster_restore import restore_cluster
from hastack.ops.restore import Target
from hastack.spec.plan import StackPlan

FACTS = "cluster_loss"
LOSS_MARGIN_S = 2.0
"""Beyond archive_timeout: the archiver's wake-up and pgBackRest's asynchronous push."""
ARCHIVE_LATENCY_S = 1.0
"""From a segment switch until the archiver reports the segment archived: writes
acknowledged this long before `last_archived_time` may still be in the next segment."""


def loss_bound_s(plan: StackPlan) -> float:
    return plan.spec.backup.archive_timeout_s + LOSS_MARGIN_S


def _node_pids(plan: StackPlan) -> list[int]:
    users = {n.user for n in plan.nodes}
    return [p.pid for p in psutil.process_iter(["username"]) if p.info["username"] in users]


def lose_every_node(ctx: DrillContext) -> None:
    """Freeze every process of every node at once (nothing commits or archives after that
    instant), tell supervisord they are stopped, kill them, delete the data directories."""
    stack, history = ctx.stack, ctx.history
    plan, sup, clock = stack.plan, stack.supervisor, stack.clock
    if not plan.backup_enabled:
        raise HastackError("cluster-loss needs backups (backup.enabled)", "hastack plan")
    programs = [p for n in plan.nodes for p in stack.programs(group=n.name)]
    facts: dict[str, Any] = history.facts.setdefault(FACTS, {})
    try:
        archive = archive_state(stack, ctx.primary)
    except HastackError as exc:
        facts["archive_error"] = exc.what  # the archive_timeout bound alone then
    else:
        if archive.last_archived_at is not None:
            age = clock.wall() - archive.last_archived_at
            facts["last_archived_mono"] = clock.monotonic() - age
            facts["last_archived_wal"] = archive.last_archived_wal
            facts["unarchived_bytes"] = archive.unarchived_bytes
    ctx.held.enter_context(
        stack.hold(
            3600, "drill cluster-loss: every node is lost", [p.process_name for p in programs]
        )
    )
    signal_all(_node_pids(plan), signal.SIGSTOP)
    t_fault = clock.monotonic()
    history.mark("fault", "every node lost: processes frozen, then killed; data deleted")
    for program in programs:
        sup.stop(program.process_name, wait=False)
    stack.until(
        lambda: _killed(plan),
        what="every process of every node gone",
        timeout_s=30,
        interval_s=0.1,
    )
    sup.wait_stopped([p.process_name for p in programs], timeout_s=30)
    for node in plan.nodes:
        for path in (node.paths.pgdata, node.paths.etcd_data):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
    facts["t_fault"] = t_fault
    if "last_archived_mono" in facts:
        facts["archived_before_fault_s"] = round(t_fault - facts["last_archived_mono"], 2)


def _killed(plan: StackPlan) -> bool:
    pids = _node_pids(plan)
    signal_all(pids, signal.SIGKILL)
    return not pids


def restore_from_repository(ctx: DrillContext) -> None:
    """What an operator runs: `hastack restore --target cluster --latest`."""
    history = ctx.history
    facts: dict[str, Any] = history.facts.setdefault(FACTS, {})
    clock = ctx.stack.clock

    def writable() -> None:
        history.mark("note", "restored leader writable", t=clock.monotonic())

    history.mark("note", "hastack restore --target cluster --latest")
    try:
        # The drill's own backup afterwards is not part of the recovery: skipped.
        result = restore_cluster(
            ctx.stack, Target("latest", None), on_writable=writable, backup_after=False
        )
    except HastackError as exc:
        facts["error"] = exc.what
        raise
    facts.update(
        restore_writable_s=result.leader_writable_s,
        restore_streaming_s=result.all_streaming_s,
        dcs=result.dcs,
        bootstrap_node=result.bootstrap_node,
    )


def loss_allowed_after(plan: StackPlan, history: History) -> float | None:
    """From when acknowledged writes may be missing: the last segment archived before the
    fault (its commits are in the repository), or, when the leader could not say,
    archive_timeout before the fault. None: the fault never happened."""
    facts = history.facts.get(FACTS) or {}
    t_fault = facts.get("t_fault")
    if t_fault is None:
        return None
    archived = facts.get("last_archived_mono")
    if archived is not None:
        return float(archived) - ARCHIVE_LATENCY_S
    return float(t_fault) - loss_bound_s(plan)


def cluster_loss_expectations(
    plan: StackPlan, history: History, lost_writes: set[int], lost_transfers: set[int]
) -> list[dict[str, Any]]:
    """Pure: the RPO of the drill against its bound, and the restore having run."""
    facts = history.facts.get(FACTS) or {}
    t_fault = facts.get("t_fault")
    bound = loss_bound_s(plan)
    found = []
    restored = facts.get("restore_streaming_s") is not None
    found.append(
        {
            "what": "the cluster restored from the repository, every node streaming "
            f"({facts.get('restore_streaming_s')} s after the restore began)"
            if restored
            else "the cluster restored from the repository",
            "ok": restored,
        }
    )
    if t_fault is None:
        return found
    lost = history.lost_sql_acks(lost_writes, lost_transfers)
    span = round(float(t_fault) - min(a.t_end for a in lost), 2) if lost else 0.0
    facts["lost_acked"] = len(lost)
    facts["lost_span_s"] = span
    archived = facts.get("archived_before_fault_s")
    segment = (
        f"; the last segment was archived {archived} s before the fault"
        if archived is not None
        else " (the archive state could not be read before the fault)"
    )
    found.append(
        {
            "what": f"RPO: {len(lost)} acknowledged writes lost, acknowledged at most {span} s "
            f"before the fault (bound: archive_timeout {plan.spec.backup.archive_timeout_s} s "
            f"+ {LOSS_MARGIN_S:g} s){segment}",
            "ok": span <= bound,
        }
    )
    return found
