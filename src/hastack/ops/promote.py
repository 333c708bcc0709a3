"""`hastack promote-standby`: a standby cluster becomes the primary cluster (a region lost).

Patroni does the promotion itself once `standby_cluster` leaves its dynamic configuration:
the standby leader promotes, its cascading replicas follow it, and synchronous replication
starts. Then `up` brings what a primary cluster runs and a standby does not: the app
instances, the backup stanza, a first full backup, the scheduler.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from hastack.errors import HastackError, Unavailable
from hastack.ops.up import UpResult, up
from hastack.polling import iso_utc
from hastack.runtime.files import write_atomic
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack
from hastack.runtime.standby import interrupt_primary_fetches, is_standby, primary_url

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


GONE = ("Connection refused", "timeout expired", "No route to host", "server closed")
"""How a primary that is not there answers (nothing listens; its HAProxy holds and closes)."""


def primary_accepts_writes(stack: Stack, attempts: int = 3) -> bool | None:
    """True: the old primary answers its read-write port out of recovery. False: nothing
    answers there, every attempt. None: it answered something else (a refused login, too
    many clients, a TLS error): alive or not, this cannot tell."""
    for _ in range(attempts):
        try:
            with psycopg.connect(primary_url(stack), connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error as exc:
            if not any(sign in str(exc) for sign in GONE):
                return None
            continue
        if row is not None and row[0] is False:
            return True
    return False


def promote_standby(
    stack: Stack, force: bool = False, progress: Progress | None = None
) -> PromoteResult:
    progress = progress or NullProgress()
    standby = stack.plan.standby
    promoted = stack.plan.paths.standby_promoted
    if standby is None and promoted.is_file():
        raise HastackError(
            f"stack {stack.name!r} is already a primary cluster "
            f"(promoted: {promoted.read_text(encoding='utf-8').strip()})",
            "nothing to do; `hastack status`",
        )
    if standby is None:
        raise HastackError(
            f"stack {stack.name!r} is not a standby cluster (its spec has no standby_cluster)",
            "promote-standby runs against the standby cluster's spec: hastack -c DR_SPEC ...",
        )
    leader = stack.leader()
    if leader is None:
        raise Unavailable(f"stack {stack.name!r} has no leader to promote", "hastack status")
    if not is_standby(stack, leader):
        _record(stack)
        raise HastackError(
            f"stack {stack.name!r} is already a primary cluster (promoted before)",
            "nothing to do; `hastack status`",
        )
    alive = primary_accepts_writes(stack)
    if alive is not False and not force:
        said = "still accepts writes" if alive else "answers, but not as expected"
        raise HastackError(
            f"the primary stack {standby.primary_name!r} {said} at {standby.primary_host}:"
            f"{standby.primary_port}: promoting now could make two primaries",
            "stop it first (its region is not lost), or --force when it is cut off for good",
        )
    clock = stack.clock
    t0 = clock.monotonic()
    progress.step(f"promoting {leader}: standby_cluster removed from Patroni's configuration")
    abandoned = stack.plan.paths.primary_abandoned
    write_atomic(abandoned, f"{iso_utc(stack.clock.wall())}\n", "root", 0o644)
    interrupt_primary_fetches(stack.plan)
    try:
        stack.patroni(leader).patch_config({"standby_cluster": None})
    except BaseException:
        abandoned.unlink(missing_ok=True)  # still a standby: WAL from the primary's repository
        raise
    _record(stack)
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
    result = PromoteResult(new_leader, standby.primary_name, alive is not False, writable_s)
    progress.step("bringing up what a primary cluster runs (app, backups)")
    result.up = up(Stack(stack.plan, clock=clock), progress=progress)  # the promoted plan
    result.elapsed_s = round(clock.monotonic() - t0, 2)
    return result


def _record(stack: Stack) -> None:
    """Remember the promotion here (later `up`s render and act as a primary cluster: no
    secrets copied from the old primary, no standby_cluster in a bootstrap after a cluster
    restore), and there, on one machine: the old primary must not start again as one."""
    standby = stack.plan.standby
    assert standby is not None
    when = iso_utc(stack.clock.wall())
    note = {"promoted_at": when, "primary": standby.primary_name, "standby": stack.name}
    write_atomic(stack.plan.paths.standby_promoted, json.dumps(note) + "\n", "root", 0o600)
    old = standby.primary_paths
    if old.marker.is_file():  # the old primary's state directory, as hastack made it
        write_atomic(old.superseded, json.dumps(note) + "\n", "root", 0o600)


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
