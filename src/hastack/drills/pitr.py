"""The point-in-time recovery drill: writes flowing, a restore point, then a destructive
statement (a table with its rows dropped). The heal restores the restore point into the
scratch instance and checks it against what the writers were told: every write acknowledged
before the restore point is there, none begun after it is, and the dropped table is back
whole. The cluster itself is never touched by the restore.
"""

from __future__ import annotations

from typing import Any

import psycopg

from hastack.drills.faults import DrillContext
from hastack.errors import HastackError
from hastack.ops.restore import Target, create_restore_point, restore_scratch

VICTIM = "hastack_drill_pitr_victim"
VICTIM_ROWS = 1000
POINT = "pitr_point"
RESULT = "pitr"


def pitr_fault(ctx: DrillContext) -> None:
    """A table of VICTIM_ROWS rows, the restore point, then DROP TABLE."""
    stack, clock = ctx.stack, ctx.stack.clock
    with stack.connect(ctx.primary) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {VICTIM}")
        conn.execute(f"CREATE TABLE {VICTIM} (id int PRIMARY KEY, v text NOT NULL)")
        conn.execute(
            f"INSERT INTO {VICTIM} SELECT g, md5(g::text) FROM generate_series(1, %s) g",
            (VICTIM_ROWS,),
        )
    name = f"drill-pitr-{int(clock.wall())}"
    before = clock.monotonic()
    point = create_restore_point(stack, name)
    after = clock.monotonic()
    ctx.history.mark("note", f"restore point {name} at {point.lsn}", node=point.node, t=after)
    ctx.history.facts[POINT] = {"name": name, "lsn": point.lsn, "before": before, "after": after}
    with stack.connect(ctx.primary) as conn:
        conn.execute(f"DROP TABLE {VICTIM}")
    ctx.history.mark("fault", f"DROP TABLE {VICTIM} ({VICTIM_ROWS} rows) after the restore point")


def pitr_restore(ctx: DrillContext) -> None:
    """Restore the restore point into the scratch instance, compare, remove the instance."""
    point = ctx.history.facts[POINT]
    history = ctx.history
    result: dict[str, Any] = {"name": point["name"]}
    history.facts[RESULT] = result
    scratch = ctx.stack.scratch()
    try:
        done = restore_scratch(ctx.stack, Target("name", point["name"]), scratch=scratch).restore
        result.update(
            restore_s=done.restore_s,
            start_s=done.start_s,
            promote_s=done.promote_s,
            total_s=done.total_s,
        )
        history.mark(
            "note", f"restored {point['name']} on the scratch instance in {done.total_s} s"
        )
        with scratch.connect() as conn:
            victim = conn.execute(f"SELECT count(*) FROM {VICTIM}").fetchone()
            rows = conn.execute("SELECT id FROM hastack_drill_writes").fetchall()
        restored = {int(str(r[0])) for r in rows}
    except (HastackError, psycopg.Error) as exc:
        result["error"] = getattr(exc, "what", None) or str(exc).strip()[:300]
        return
    finally:
        scratch.cleanup(only_mine=True)
    writes = [a for a in history.acks if a.writer != "transfer" and not a.writer.startswith("http")]
    acked_before = {a.op_id for a in writes if a.t_end < point["before"]}
    begun_after = {a.op_id for a in writes if a.t_start > point["after"]}
    result.update(
        victim_rows=int(str(victim[0])) if victim else 0,
        acked_before=len(acked_before),
        missing=sorted(acked_before - restored)[:20],
        missing_count=len(acked_before - restored),
        begun_after=len(begun_after),
        leaked=sorted(begun_after & restored)[:20],
        leaked_count=len(begun_after & restored),
    )


def pitr_expectations(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """What the pitr drill must show, from the facts `pitr_restore` recorded. Pure."""
    result = facts.get(RESULT)
    if not result:
        return [{"what": "the restore ran", "ok": False}]
    if "error" in result:
        return [
            {"what": f"the restore to {result['name']} succeeded ({result['error']})", "ok": False}
        ]
    return [
        {
            "what": (
                f"restored to {result['name']} in {result['total_s']} s (restore "
                f"{result['restore_s']} s, start {result['start_s']} s, recovery to the point "
                f"{result['promote_s']} s)"
            ),
            "ok": True,
        },
        {
            "what": (
                f"every write acknowledged before the restore point is in the copy "
                f"({result['acked_before']} acknowledged, {result['missing_count']} missing)"
            ),
            "ok": result["missing_count"] == 0 and result["acked_before"] > 0,
        },
        {
            "what": (
                f"no write begun after the restore point is in the copy ({result['begun_after']} "
                f"begun after, {result['leaked_count']} found)"
            ),
            "ok": result["leaked_count"] == 0 and result["begun_after"] > 0,
        },
        {
            "what": (
                f"the dropped table is back whole ({result['victim_rows']} of {VICTIM_ROWS} rows)"
            ),
            "ok": result["victim_rows"] == VICTIM_ROWS,
        },
    ]
