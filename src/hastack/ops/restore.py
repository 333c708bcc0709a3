"""Restores: a point in time into the scratch instance, restore points, cleaning up.

Before restoring, the leader switches to a new WAL segment and pgBackRest waits until it is
in the repository (`pgbackrest check`): a target seconds old is then restorable instead of
ending recovery early. Targets outside what the repository holds are refused before
anything is touched.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from hastack.errors import HastackError
from hastack.ops.backup import require_backups
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.scratch import Scratch, ScratchRestore
from hastack.runtime.stack import Stack

LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
RESTORE_POINT = re.compile(r"^[A-Za-z0-9_.:-]{1,63}$")


@dataclass(frozen=True)
class Target:
    kind: str
    """time, lsn, name or latest."""
    value: str | None
    at: float | None = None
    """Epoch seconds, for a time target."""

    def describe(self) -> str:
        return "the newest archived WAL" if self.kind == "latest" else f"{self.kind} {self.value}"


def parse_target(
    to_time: str | None, to_lsn: str | None, to_name: str | None, latest: bool
) -> Target:
    """Exactly one target, checked. Pure."""
    given = [
        (k, v) for k, v in (("time", to_time), ("lsn", to_lsn), ("name", to_name)) if v is not None
    ]
    if latest:
        given.append(("latest", ""))
    if len(given) != 1:
        raise HastackError(
            "give exactly one restore target",
            "--to-time '2026-11-27 14:05:00+00', --to-lsn 0/5000060, --to-name NAME or --latest",
        )
    kind, value = given[0]
    if kind == "latest":
        return Target("latest", None)
    assert value is not None
    if kind == "time":
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise HastackError(
                f"--to-time {value!r} is not a time",
                "write it like '2026-11-27 14:05:00+00' (ISO 8601; UTC when no offset)",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        # pgBackRest passes it to PostgreSQL's recovery_target_time: an explicit offset.
        return Target("time", when.isoformat(sep=" "), when.timestamp())
    if kind == "lsn" and not LSN.match(value):
        raise HastackError(f"--to-lsn {value!r} is not an LSN", "write it like 0/5000060")
    if kind == "name" and not RESTORE_POINT.match(value):
        raise HastackError(
            f"--to-name {value!r} is not a restore point name hastack creates",
            "letters, digits and _ . : - (at most 63); see `hastack restore-point`",
        )
    return Target(kind, value)


def archive_now(stack: Stack, progress: Progress) -> str | None:
    """Switch WAL on the leader and wait until the segment is archived; the reason when
    that cannot be done (no leader: restore from what is already archived)."""
    progress.step("archiving the current WAL segment (pgbackrest check)")
    result = stack.pgbackrest().run("check", timeout_s=120)
    return None if result.ok else (result.tail(2) or "pgbackrest check failed")


def refuse_out_of_range(target: Target, oldest_stop: float | None, now: float) -> None:
    """A time target must lie between the end of the oldest backup and now. Pure."""
    if oldest_stop is None:
        raise HastackError("the repository holds no backup to restore", "hastack backup")
    if target.at is None:
        return
    if target.at < oldest_stop:
        oldest = datetime.fromtimestamp(oldest_stop, UTC).isoformat(sep=" ")
        raise HastackError(
            f"{target.value} is before the oldest backup ends ({oldest}): nothing restores to it",
            "hastack backups (the restorable range); pick a later time",
        )
    if target.at > now:
        raise HastackError(
            f"{target.value} is in the future: the newest restorable point is now",
            "use --latest for everything archived",
        )


@dataclass(frozen=True)
class RestoreResult:
    restore: ScratchRestore
    archive_note: str | None
    """Why the current WAL could not be archived first (None: it was)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.restore),
            "total_s": self.restore.total_s,
            "archive_note": self.archive_note,
        }


def restore_scratch(
    stack: Stack,
    target: Target,
    progress: Progress | None = None,
    scratch: Scratch | None = None,
) -> RestoreResult:
    """Restore `target` into the scratch instance and start it there. `scratch`: the handle
    that will own it (and may remove it with `cleanup(only_mine=True)`)."""
    require_backups(stack)
    progress = progress or NullProgress()
    scratch = scratch or stack.scratch()
    scratch.on_wait = progress.step
    scratch.wait_until_free()
    info = stack.pgbackrest().info()
    good = [b.stop for b in info.backups if not b.error]
    refuse_out_of_range(target, min(good) if good else None, stack.clock.wall())
    note = archive_now(stack, progress)
    if note:
        progress.done(f"could not archive the current segment first ({note}); restoring anyway")
    progress.step(f"restoring {target.describe()} into the scratch instance")
    done = scratch.restore(target.kind, target.value, target.describe())
    progress.done(
        f"restored in {done.restore_s:.1f} s, started in {done.start_s:.1f} s, "
        f"promoted after {done.promote_s:.1f} s"
    )
    return RestoreResult(done, note)


def cleanup_scratch(stack: Stack) -> bool:
    require_backups(stack)
    return stack.scratch().cleanup()


@dataclass(frozen=True)
class RestorePoint:
    name: str
    lsn: str
    created_at: str
    node: str


def create_restore_point(stack: Stack, name: str) -> RestorePoint:
    """A named point in the WAL on the leader (`pg_create_restore_point`), for `hastack
    restore --to-name NAME` later."""
    require_backups(stack)
    if not RESTORE_POINT.match(name):
        raise HastackError(
            f"{name!r} is not a valid restore point name",
            "letters, digits and _ . : - (at most 63 characters)",
        )
    leader = stack.leader()
    if leader is None:
        raise HastackError("the cluster has no leader to write the restore point", "hastack status")
    with stack.connect(leader) as conn:
        row = conn.execute(
            "SELECT pg_create_restore_point(%s)::text, now()::text", (name,)
        ).fetchone()
    assert row is not None
    return RestorePoint(name=name, lsn=str(row[0]), created_at=str(row[1]), node=leader)
