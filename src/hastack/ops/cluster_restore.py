"""`hastack restore --target cluster`: every node rebuilt from the backup repository.

In order, under a hold of the watcher: the current WAL archived when a leader is left (a
planned restore to --latest loses nothing), the backup scheduler and every Patroni stopped,
the data directories set aside, the DCS cleared (or etcd started afresh when it lost quorum),
the first node's Patroni bootstrapped from the repository (a custom bootstrap method: pgBackRest
restores, PostgreSQL recovers to the target and promotes), its normal config written back, the
other nodes started (Patroni makes them replicas from the repository), the roles' passwords and
the demo migrations applied as `up` does, then, healthy, the old directories removed and a new
full backup taken (the restored cluster archives on a new timeline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from hastack.demo.migrations import demo_migrations
from hastack.errors import HastackError
from hastack.ops.backup import require_backups, take_backup
from hastack.ops.restore import Target, archive_now, refuse_out_of_range
from hastack.runtime.cluster_restore import (
    Aside,
    bootstrap_from_repository,
    clear_dcs,
    discard_aside,
    set_aside_etcd,
    set_aside_pgdata,
    write_patroni_config,
)
from hastack.runtime.database import ensure_database
from hastack.runtime.dcs import converge_dcs
from hastack.runtime.health import data_tier
from hastack.runtime.lifecycle import (
    StopResult,
    ensure_started,
    stop_patroni_ordered,
    stop_postgres_leftovers,
)
from hastack.runtime.migrations import apply_migrations
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack

T = TypeVar("T")

HOLD_S = 7200.0
BOOTSTRAP_DEADLINE_S = 1800.0
"""Restore + recovery of the first node (pgBackRest restores ~150 MB/s here)."""
REPLICAS_DEADLINE_S = 1800.0


@dataclass
class ClusterRestoreResult:
    target: str
    bootstrap_node: str = ""
    archive_note: str | None = None
    dcs: str = ""
    """What happened to the DCS: its keys deleted, or etcd started afresh."""
    set_aside: list[Aside] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    leader_writable_s: float | None = None
    """From the start of the restore until the restored leader took a write."""
    all_streaming_s: float | None = None
    total_s: float | None = None
    backup: str | None = None
    """The full backup taken of the restored cluster."""
    migrations: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_cluster(
    stack: Stack,
    target: Target,
    progress: Progress | None = None,
    on_writable: Callable[[], None] | None = None,
    backup_after: bool = True,
) -> ClusterRestoreResult:
    """Rebuild every node from the repository at `target`. `on_writable`: called once the
    restored leader takes writes (a drill marks it)."""
    require_backups(stack)
    progress = progress or NullProgress()
    sup = stack.supervisor
    if not sup.is_running():
        raise HastackError(
            "the stack's supervisor is not running: the restore starts the nodes through it",
            "hastack up (then restore); see docs/backups.md#cluster-restore",
        )
    info = stack.pgbackrest().info()
    good = [b.stop for b in info.backups if not b.error]
    refuse_out_of_range(target, min(good) if good else None, stack.clock.wall())
    result = ClusterRestoreResult(target=target.describe())
    clock = stack.clock
    t0 = clock.monotonic()
    if stack.leader() is not None:
        result.archive_note = archive_now(stack, progress)
    else:
        result.archive_note = "no leader: restoring what the repository already holds"
    if result.archive_note:
        progress.done(f"the current WAL not archived first ({result.archive_note})")
    else:
        progress.done("the current WAL is in the repository")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with stack.hold(HOLD_S, "hastack restore --target cluster"):
        try:
            _stop_data_tier(stack, progress)
            result.set_aside = set_aside_pgdata(stack, stamp)
            progress.done(f"data directories set aside ({len(result.set_aside)})")
            result.dcs = _reset_dcs(stack, stamp, result, progress)
            ensure_started(sup, stack.programs("pgbackrest"))
            leader = _bootstrap_first(stack, target, result, progress)
            result.leader_writable_s = round(clock.monotonic() - t0, 2)
            progress.done(f"{leader} restored and writable ({result.leader_writable_s} s)")
            if on_writable is not None:
                on_writable()
            _start_replicas(stack, progress)
            result.all_streaming_s = round(clock.monotonic() - t0, 2)
            progress.done(f"every node streaming ({result.all_streaming_s} s)")
            converge_dcs(stack, leader)
            if stack.plan.app_is_demo and stack.plan.app_instances:
                result.migrations = apply_migrations(stack, leader, demo_migrations())
        except HastackError as exc:
            raise _kept_aside(exc, result) from None
        result.removed = discard_aside(result.set_aside)
        progress.done(f"removed the set-aside directories ({len(result.removed)})")
        ensure_started(sup, stack.programs("backup"))
    result.total_s = round(clock.monotonic() - t0, 2)
    if backup_after:
        # The restored cluster archives on a new timeline: a full backup of it now, so the
        # next restore does not depend on the old timeline's WAL.
        result.backup = take_backup(stack, "full", progress).label
    return result


def _stop_data_tier(stack: Stack, progress: Progress) -> None:
    sup = stack.supervisor
    for program in stack.programs("backup"):
        sup.stop(program.process_name)
    stop_patroni_ordered(stack, progress, StopResult())
    stopped = stop_postgres_leftovers(stack)
    if stopped:
        progress.done(f"PostgreSQL stopped with pg_ctl on {', '.join(stopped)}")


def _reset_dcs(stack: Stack, stamp: str, result: ClusterRestoreResult, progress: Progress) -> str:
    """No cluster in the DCS, so Patroni bootstraps one."""
    if _etcd_quorum(stack)[0]:
        deleted = clear_dcs(stack)
        progress.done(f"the cluster's {deleted} keys deleted from etcd")
        return f"{deleted} keys deleted"
    progress.step("etcd has no quorum: starting its members afresh")
    sup = stack.supervisor
    etcd = stack.programs("etcd")
    for program in etcd:
        sup.stop(program.process_name)
    result.set_aside += set_aside_etcd(stack, stamp)
    ensure_started(sup, etcd)
    stack.wait(
        lambda: _etcd_quorum(stack),
        what="etcd quorum",
        timeout_s=60,
        interval_s=0.2,
        hint="hastack logs pg1 etcd",
    )
    progress.done("etcd started afresh, quorum")
    return "etcd started afresh"


def _etcd_quorum(stack: Stack) -> tuple[bool | None, str]:
    members = stack.snapshot(services=False).etcd
    healthy = [m.name for m in members if m.healthy]
    if len(healthy) > len(members) // 2:
        return True, ""
    return None, f"healthy members: {healthy or 'none'}"


def _bootstrap_first(
    stack: Stack, target: Target, result: ClusterRestoreResult, progress: Progress
) -> str:
    first = stack.plan.postgres_nodes[0]
    result.bootstrap_node = first.name
    write_patroni_config(stack, first, bootstrap_from_repository(target.kind, target.value))
    progress.step(f"restoring {target.describe()} on {first.name} (Patroni bootstrap)")
    ensure_started(stack.supervisor, stack.programs("patroni", group=first.name))

    def leader() -> tuple[str | None, str]:
        snap = stack.snapshot(services=False)
        tier = data_tier(snap)
        seen = ", ".join(f"{m.name}={m.role}/{m.state}" for m in snap.members)
        return (tier.leader if tier.leader == first.name else None), seen

    stack.wait(
        leader,
        what=f"{first.name} restored and promoted",
        timeout_s=BOOTSTRAP_DEADLINE_S,
        interval_s=0.5,
        hint=f"hastack logs {first.name} patroni",
    )
    # Patroni reads the bootstrap section only while it creates the cluster: the normal
    # config goes back at once, so a later restart of this Patroni never restores again.
    write_patroni_config(stack, first, None)
    _retry(stack, lambda: ensure_database(stack, first.name))
    return first.name


def _start_replicas(stack: Stack, progress: Progress) -> None:
    plan = stack.plan
    others = [p for p in stack.programs("patroni") if p.group != plan.postgres_nodes[0].name]
    progress.step("starting the other nodes (replicas from the repository)")
    ensure_started(stack.supervisor, others)
    want = len(plan.postgres_nodes) - 1

    def streaming() -> tuple[bool | None, str]:
        snap = stack.snapshot(services=False)
        tier = data_tier(snap)
        sync_ok = tier.sync_standby is not None or not plan.spec.postgres.synchronous_mode
        seen = ", ".join(f"{m.name}={m.role}/{m.state}" for m in snap.members)
        return (True if len(tier.streaming) == want and sync_ok else None), seen

    stack.wait(
        streaming,
        what="every replica streaming",
        timeout_s=REPLICAS_DEADLINE_S,
        interval_s=0.5,
        hint="hastack status; hastack logs pg2 patroni",
    )


def _retry(stack: Stack, action: Callable[[], object]) -> None:
    """Right after a promotion the leader may refuse a connection for a moment."""

    def attempt() -> tuple[bool | None, str]:
        try:
            action()
        except HastackError as exc:
            return None, exc.what
        return True, ""

    stack.wait(attempt, what="roles and database on the leader", timeout_s=60, interval_s=0.5)


def _kept_aside(exc: HastackError, result: ClusterRestoreResult) -> HastackError:
    """The restore failed: nothing set aside was removed; say where it is."""
    if not result.set_aside:
        return exc
    kept = "; ".join(f"{a.node} {a.what}: {a.moved_to}" for a in result.set_aside)
    return HastackError(
        f"the cluster restore failed: {exc.what}",
        f"{exc.hint}; the previous data is kept aside ({kept}): "
        "see docs/backups.md#cluster-restore",
        exc.details,
    )
