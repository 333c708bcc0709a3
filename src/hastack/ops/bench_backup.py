"""`hastack bench backup`: what backups and restores take for a database of a given size, in
one run, on the running stack: a full backup, a differential after 5 % of the rows changed,
a point-in-time restore into the scratch instance, a verification of the full backup, and
(`--cluster`) the whole cluster restored from the repository to the newest WAL.

The pgbench tables it creates are dropped afterwards; the backups stay in the repository
(they are the stack's own, and expire with its retention)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hastack.errors import HastackError
from hastack.ops.backup import require_backups, take_backup
from hastack.ops.bench import drop_tables, initialise_as_owner, refuse_existing_tables
from hastack.ops.cluster_restore import restore_cluster
from hastack.ops.restore import Target, create_restore_point, restore_scratch
from hastack.ops.verify import verify_backup
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack

CHURN = 0.05
"""Share of pgbench_accounts updated between the full and the differential backup."""
ACCOUNTS_PER_SCALE = 100_000


@dataclass
class BackupBench:
    scale: int
    leader: str
    database_bytes: int = 0
    init_s: float = 0.0
    rows: dict[str, Any] = field(default_factory=dict)
    """Each measured step: seconds, bytes, MB/s."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_backup(
    stack: Stack, scale: int = 70, progress: Progress | None = None, cluster: bool = False
) -> BackupBench:
    require_backups(stack)
    progress = progress or NullProgress()
    leader = stack.leader()
    if leader is None:
        raise HastackError(f"stack {stack.name!r} has no leader", "hastack status")
    if stack.scratch().exists():
        raise HastackError("a scratch instance exists", "hastack restore --cleanup")
    refuse_existing_tables(stack, leader)
    report = BackupBench(scale=scale, leader=leader)
    try:
        progress.step(f"pgbench -i -s {scale} on {leader}")
        t0 = time.monotonic()
        initialise_as_owner(stack, leader, scale)
        report.init_s = round(time.monotonic() - t0, 1)
        with stack.connect(leader) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        report.database_bytes = int(str(row[0])) if row else 0
        full = take_backup(stack, "full", progress)
        report.rows["full backup"] = _row(full.duration_s, full.size_bytes, full.repo_bytes)
        changed = int(scale * ACCOUNTS_PER_SCALE * CHURN)
        progress.step(f"changing {changed} accounts ({CHURN:.0%})")
        with stack.connect(leader) as conn:
            conn.execute(
                "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= %s", (changed,)
            )
            conn.execute("CHECKPOINT")
        diff = take_backup(stack, "diff", progress)
        report.rows["diff backup"] = _row(diff.duration_s, diff.size_bytes, diff.repo_bytes)
        point = create_restore_point(stack, f"bench-{int(stack.clock.wall())}")
        scratch = stack.scratch()
        restored = restore_scratch(stack, Target("name", point.name), progress, scratch).restore
        report.rows["point-in-time restore"] = {
            "seconds": restored.total_s,
            "restore_s": restored.restore_s,
            "start_s": restored.start_s,
            "recovery_s": restored.promote_s,
        }
        scratch.cleanup(only_mine=True)
        checked = verify_backup(stack, full.label, progress)
        report.rows["verify-backup (full)"] = {
            "seconds": checked.total_s,
            "restore_s": checked.restore_s,
            "amcheck_s": checked.amcheck_s,
            "count_s": checked.count_s,
            "ok": checked.ok,
        }
        if cluster:
            report.rows["cluster restore (latest)"] = _cluster_restore(stack, scale, progress)
    finally:
        drop_tables(stack, stack.leader() or leader)
    return report


def _cluster_restore(stack: Stack, scale: int, progress: Progress) -> dict[str, Any]:
    """Every node rebuilt from the repository at the newest WAL; the accounts counted on the
    restored leader."""
    done = restore_cluster(stack, Target("latest", None), progress)
    leader = stack.leader()
    if leader is None:
        raise HastackError("no leader after the cluster restore", "hastack status")
    with stack.connect(leader) as conn:
        row = conn.execute("SELECT count(*) FROM pgbench_accounts").fetchone()
    accounts = int(str(row[0])) if row else 0
    return {
        "seconds": done.all_streaming_s,
        "writable_s": done.leader_writable_s,
        "all_streaming_s": done.all_streaming_s,
        "full_backup_after": done.backup,
        "ok": accounts == scale * ACCOUNTS_PER_SCALE,
    }


def _row(seconds: float, size_bytes: int, repo_bytes: int) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "database_mb": round(size_bytes / 1e6, 1),
        "repository_mb": round(repo_bytes / 1e6, 1),
        "mb_per_s": round(size_bytes / 1e6 / seconds, 1) if seconds else None,
    }
