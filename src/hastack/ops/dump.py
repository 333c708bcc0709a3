"""`hastack dump`: logical dumps of the application database (runtime/dumps.py), their
retention, and restoring one into the scratch instance."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hastack.errors import HastackError
from hastack.ops.backup import require_backups
from hastack.polling import iso_utc
from hastack.runtime import dumps
from hastack.runtime.health import data_tier
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack


@dataclass(frozen=True)
class DumpRun:
    name: str
    path: str
    node: str
    size_bytes: int
    seconds: float
    created_at: str
    removed: list[str] = field(default_factory=list)
    """Older dumps removed by retention (backup.dumps_kept)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def take_dump(stack: Stack, progress: Progress | None = None) -> DumpRun:
    """A dump from the leader (the superuser bypasses row-level security: every row)."""
    require_backups(stack)
    progress = progress or NullProgress()
    leader = data_tier(stack.snapshot(services=False)).leader
    if leader is None:
        raise HastackError("the cluster has no leader to dump from", "hastack status")
    node = stack.plan.node(leader)
    progress.step(f"pg_dump of {stack.plan.spec.postgres.database} on {leader}, encrypted")
    t0 = time.monotonic()
    made = dumps.take_dump(stack.plan, stack.secrets, node)
    took = round(time.monotonic() - t0, 2)
    removed = []
    for old in dumps.expired(dumps.list_dumps(stack.plan), stack.plan.spec.backup.dumps_kept):
        dumps.remove(stack.plan, old)
        removed.append(old.name)
    progress.done(f"{made.name}: {made.size_bytes / 1e6:.1f} MB in {took} s")
    return DumpRun(
        made.name, made.path, leader, made.size_bytes, took, iso_utc(made.created_at), removed
    )


def list_dumps(stack: Stack) -> list[dict[str, Any]]:
    require_backups(stack)
    return [
        {
            "name": d.name,
            "path": d.path,
            "size_bytes": d.size_bytes,
            "created_at": iso_utc(d.created_at),
        }
        for d in dumps.list_dumps(stack.plan)
    ]


@dataclass(frozen=True)
class DumpRestore:
    name: str
    create_s: float
    restore_s: float
    tables: int
    rows: int
    url: str
    socket_dir: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_dump(stack: Stack, given: str, progress: Progress | None = None) -> DumpRestore:
    """Restore a dump into a new scratch instance (the cluster is not touched)."""
    require_backups(stack)
    progress = progress or NullProgress()
    path = dumps.resolve_dump(stack.plan, given)
    scratch = stack.scratch()
    scratch.on_wait = progress.step
    progress.step(f"restoring {path.name} into a new scratch instance")
    create_s, restore_s = dumps.restore_dump(stack.plan, path, scratch)
    db = stack.plan.spec.postgres.database
    with scratch.connect(db) as conn:
        tables = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN "
            "('pg_catalog', 'information_schema')"
        ).fetchall()
        rows = 0
        for (table,) in tables:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            rows += int(str(row[0])) if row else 0
    progress.done(f"restored in {restore_s} s: {len(tables)} tables, {rows} rows")
    return DumpRestore(
        path.name,
        create_s,
        restore_s,
        len(tables),
        rows,
        scratch.url(db),
        str(stack.plan.paths.scratch_socket_dir),
    )
