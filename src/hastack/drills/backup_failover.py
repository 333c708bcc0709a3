"""The backup-under-failover drill: a full backup is running when the leader's node is lost.

The backup runs as the scheduler runs it (`take_backup`, the repository host backing up
whichever node leads). The node is lost once pgBackRest holds its backup session on the
leader. The stack fails over and heals by itself; the drill then checks what the issue asks:
the interrupted backup either completed or failed cleanly (an error from pgBackRest, and no
unfinished set listed as restorable), the next backup (as the scheduler would take it) succeeds
from the new leader, and the WAL archive has no gap (`pgbackrest check` from the new leader).
Backups must never block writes: the write gap must stay within what a node loss costs
without one.
"""

from __future__ import annotations

import threading
from typing import Any

from hastack.drills.faults import DrillContext, lose_node
from hastack.errors import HastackError
from hastack.ops.backup import take_backup
from hastack.runtime.health import replicas_streaming

FACTS = "backup_failover"
THREAD = "backup_failover_thread"
BACKUP_SESSION = "pgBackRest [backup]"
"""The application_name of pgBackRest's session on the node it backs up."""
MAX_WRITE_GAP_S = 5.0
"""node-loss stops writes for ~2 s (3.4 s at most in 10 runs, docs/drills.md)."""


def _backup_session_open(ctx: DrillContext) -> bool:
    with ctx.stack.connect(ctx.primary) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (BACKUP_SESSION,),
        ).fetchone()
    return bool(row and int(str(row[0])) > 0)


def lose_leader_during_backup(ctx: DrillContext) -> None:
    stack, history = ctx.stack, ctx.history
    facts: dict[str, Any] = history.facts.setdefault(FACTS, {})
    before = {b.label for b in stack.pgbackrest().info().backups}
    facts["labels_before"] = sorted(before)

    def backup() -> None:
        try:
            run = take_backup(stack, "full")
        except HastackError as exc:
            said = [d.strip() for d in exc.details if "ERROR" in d][:1]
            facts["backup"] = {"ok": False, "error": "; ".join([exc.what, *said])[:300]}
        except Exception as exc:  # a crash of hastack itself is not a clean failure
            facts["backup"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "bug": True}
        else:
            facts["backup"] = {"ok": True, "label": run.label, "duration_s": run.duration_s}
        facts["backup_ended"] = stack.clock.monotonic()

    # The scheduler stays stopped meanwhile: a backup of its own would hold pgBackRest's lock
    # and fail the drill's (held, so the watcher does not start it again).
    scheduler = [p.process_name for p in stack.programs("backup")]
    ctx.held.enter_context(stack.hold(900, "drill backup-under-failover", scheduler))
    for name in scheduler:
        stack.supervisor.stop(name)
    thread = threading.Thread(target=backup, name="drill-backup", daemon=True)
    history.facts[THREAD] = thread
    thread.start()
    stack.until(
        lambda: "backup" in facts or _backup_session_open(ctx),
        what="pgBackRest's backup session on the leader",
        timeout_s=60,
        interval_s=0.1,
        hint="hastack logs backup-repo",
    )
    if "backup" in facts:
        history.mark("note", "the backup ended before the leader could be lost")
    else:
        history.mark("note", "full backup running (pgBackRest's session open on the leader)")
    lose_node(ctx, ctx.primary)


def after_the_failover(ctx: DrillContext) -> None:
    """Wait for the interrupted backup to end, for the stack to heal, then take the next
    backup and check the archive from the new leader."""
    stack, history = ctx.stack, ctx.history
    facts: dict[str, Any] = history.facts.setdefault(FACTS, {})
    thread = history.facts.pop(THREAD, None)
    if isinstance(thread, threading.Thread):
        thread.join(timeout=900)
    outcome = facts.get("backup") or {"ok": False, "error": "did not end", "bug": True}
    history.mark("note", "the interrupted backup " + _said(outcome))
    info = stack.pgbackrest().info()
    good = {b.label for b in info.backups if not b.error}
    new = sorted(good - set(facts.get("labels_before", [])))
    facts["new_good_sets"] = new
    # The cluster back (not the whole stack: the scheduler is stopped on purpose until the
    # next backup is taken).
    want = len(stack.plan.postgres_nodes) - 1

    def cluster_back() -> bool:
        snap = stack.snapshot(services=False)
        return bool(replicas_streaming(snap, want, synchronous_mode=False)[0])

    try:
        stack.until(cluster_back, what="every node streaming again", timeout_s=180)
    except HastackError as exc:
        facts["healthy_error"] = exc.what
        _start_scheduler(ctx)
        return
    try:
        run = take_backup(stack, "incr")
        facts["next_backup"] = {"ok": True, "label": run.label}
    except HastackError as exc:
        facts["next_backup"] = {"ok": False, "error": exc.what}
    history.mark("note", "the next backup " + _said(facts["next_backup"]))
    check = stack.pgbackrest().run("check", timeout_s=120)
    facts["check"] = {"ok": check.ok, "output": "" if check.ok else check.tail(3)}
    _start_scheduler(ctx)


def _start_scheduler(ctx: DrillContext) -> None:
    for program in ctx.stack.programs("backup"):
        ctx.stack.supervisor.start(program.process_name, wait=False)


def _said(outcome: dict[str, Any]) -> str:
    if outcome.get("ok"):
        return f"completed ({outcome.get('label')})"
    return f"failed: {outcome.get('error')}"


def backup_failover_expectations(facts: dict[str, Any], write_gap_s: float) -> list[dict[str, Any]]:
    """Pure: what the backup-under-failover drill must show."""
    mine = facts.get(FACTS) or {}
    outcome = mine.get("backup") or {}
    new = mine.get("new_good_sets", [])
    if outcome.get("ok"):
        clean = outcome.get("label") in new
        what = f"the interrupted full backup completed ({outcome.get('label')})"
    else:
        # Failed cleanly: pgBackRest said so, and nothing new is listed as restorable.
        clean = bool(outcome) and not outcome.get("bug") and not new
        what = f"the interrupted full backup failed cleanly ({outcome.get('error', 'no outcome')})"
    nxt = mine.get("next_backup") or {}
    check = mine.get("check") or {}
    return [
        {"what": what, "ok": clean},
        {
            "what": "the next backup succeeded from the new leader"
            + (f" ({nxt['label']})" if nxt.get("ok") else f" ({nxt.get('error', 'not taken')})"),
            "ok": bool(nxt.get("ok")),
        },
        {
            "what": "the WAL archive has no gap (pgbackrest check from the new leader)"
            + ("" if check.get("ok") else f": {check.get('output', 'not run')}"),
            "ok": bool(check.get("ok")),
        },
        {
            "what": f"writes stopped no longer than a node loss without a backup "
            f"({write_gap_s:.2f} s, at most {MAX_WRITE_GAP_S:g} s)",
            "ok": write_gap_s <= MAX_WRITE_GAP_S,
        },
    ]
