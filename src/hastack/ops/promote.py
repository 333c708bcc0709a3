"""`hastack promote-standby`: a standby cluster becomes the primary cluster (a region lost).

Patroni does the promotion itself once `standby_cluster` leaves its dynamic configuration:
the standby leader promotes, its cascading replicas follow it, and synchronous replication
starts. Then `up` brings what a primary cluster runs and a standby does not: the app
instances, the backup stanza, a first full backup, the scheduler.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from hastack.errors import HastackError, Unavailable
from hastack.ops.up import UpResult, up
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack
from hastack.runtime.standby import is_standby, primary_url

WRITABLE_TIMEOUT_S = 60.0


@dataclass
class PromoteResult:
    leader: str
    primary: str
    primary_alive: bool
    """The old primary still accepted writes (only with --force)."""
    writable_s: float
    """From the request until the new leader took a write."""
    elapsed_s: float = 0.0
    up: UpResult | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["up"] = asdict(self.up) if self.up else None
        return data


def primary_accepts_writes(stack: Stack) -> bool:
    """The old primary answers its read-write port and is not in recovery."""
    try:
        with psycopg.connect(primary_url(stack), connect_timeout=2) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return False
    return row is not None and row[0] is False


def promote_standby(
    stack: Stack, force: bool = False, progress: Progress | None = None
) -> PromoteResult:
    progress = progress or NullProgress()
    standby = stack.plan.standby
    if standby is None:
        raise HastackError(
            f"stack {stack.name!r} is not a standby cluster (its spec has no standby_cluster)",
            "promote-standby runs against the standby cluster's spec: hastack -c DR_SPEC ...",
        )
    leader = stack.leader()
    if leader is None:
        raise Unavailable(f"stack {stack.name!r} has no leader to promote", "hastack status")
    if not is_standby(stack, leader):
        raise HastackError(
            f"stack {stack.name!r} is already a primary cluster (promoted before)",
            "nothing to do; `hastack status`",
        )
    alive = primary_accepts_writes(stack)
    if alive and not force:
        raise HastackError(
            f"the primary stack {standby.primary_name!r} still accepts writes at "
            f"{standby.primary_host}:{standby.primary_port}: promoting now makes two primaries",
            "stop it first (its region is not lost), or --force when it is cut off for good",
        )
    clock = stack.clock
    t0 = clock.monotonic()
    progress.step(f"promoting {leader}: standby_cluster removed from Patroni's configuration")
    stack.patroni(leader).patch_config({"standby_cluster": None})
    progress.step("waiting for a writable leader")
    new_leader = stack.wait(
        lambda: _writable(stack),
        what="a writable leader",
        timeout_s=WRITABLE_TIMEOUT_S,
        interval_s=0.1,
        hint=f"hastack logs {leader} patroni",
    )
    writable_s = round(clock.monotonic() - t0, 2)
    progress.done(f"{new_leader} takes writes ({writable_s} s)")
    result = PromoteResult(new_leader, standby.primary_name, alive, writable_s)
    progress.step("bringing up what a primary cluster runs (app, backups)")
    result.up = up(stack, progress=progress)
    result.elapsed_s = round(clock.monotonic() - t0, 2)
    return result


def _writable(stack: Stack) -> tuple[str | None, str]:
    leader = stack.leader()
    if leader is None:
        return None, "no leader key"
    try:
        with stack.connect(leader, connect_timeout_s=1) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except (Unavailable, psycopg.Error) as exc:
        return None, str(exc)[:200]
    if row is None or row[0]:
        return None, f"{leader} is still in recovery"
    return leader, ""
