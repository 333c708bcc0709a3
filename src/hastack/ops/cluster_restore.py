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

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from hastack.demo.migrations import demo_migrations
from hastack.errors import HastackError
from hastack.ops.backup import refuse_undecryptable, require_backups, take_backup
from hastack.ops.restore import Target, archive_now, refuse_out_of_range
from hastack.runtime import holds
from hastack.runtime.cluster_restore import (
    Aside,
    bootstrap_failures,
    bootstrap_from_repository,
    clear_dcs,
    discard_aside,
    leftover_asides,
    log_lines,
    remove_dirs,
    set_aside_etcd,
    set_aside_pgdata,
    write_patroni_config,
)
from hastack.runtime.database import ensure_database_when_ready
from hastack.runtime.dcs import converge_dcs
from hastack.runtime.health import (
    data_tier,
    etcd_quorum_reached,
    members_seen,
    replicas_streaming,
)
from hastack.runtime.lifecycle import (
    StopResult,
    ensure_started,
    stop_patroni_ordered,
    stop_postgres_leftovers,
)
from hastack.runtime.locks import exclusive
from hastack.runtime.migrations import apply_migrations
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack

T = TypeVar("T")

HOLD_S = 7200.0
UNFINISHED = "cluster-restore"
"""The persistent hold a failed restore leaves (runtime/holds.py)."""
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
    backup_error: str | None = None
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
    refuse_undecryptable(stack, info)
    good = [b.stop for b in info.backups if not b.error]
    refuse_out_of_range(target, min(good) if good else None, stack.clock.wall())
    result = ClusterRestoreResult(target=target.describe())
    with exclusive(stack.plan.paths.up_lock, "hastack restore", 900, progress, stack.clock):
        _restore(stack, target, result, progress, on_writable)
    if backup_after:
        # The restored cluster archives on a new timeline: a full backup of it now, so the
        # next restore does not depend on the old timeline's WAL. The restore succeeded
        # either way: a failed backup is said, not raised.
        try:
            result.backup = take_backup(stack, "full", progress).label
        except HastackError as exc:
            result.backup_error = exc.what
            progress.done(f"the backup after the restore failed: {exc.what}; `hastack backup`")
    ensure_started(stack.supervisor, stack.programs("backup"))
    return result


def _restore(
    stack: Stack,
    target: Target,
    result: ClusterRestoreResult,
    progress: Progress,
    on_writable: Callable[[], None] | None,
) -> None:
    clock, sup = stack.clock, stack.supervisor
    t0 = clock.monotonic()
    # The writers still run (the app instances, PgBouncer): what they commit between this
    # switch and the leader's stop is not in the repository.
    if stack.leader() is not None:
        result.archive_note = archive_now(stack, progress)
    else:
        result.archive_note = "no leader: restoring what the repository already holds"
    if result.archive_note:
        progress.done(f"the current WAL not archived first ({result.archive_note})")
    else:
        progress.done("the current WAL is in the repository")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    holds_dir = stack.plan.paths.holds_dir
    with stack.hold(HOLD_S, "hastack restore --target cluster"):
        # This run takes over an earlier one that failed: once it succeeds, what that one set
        # aside (and what Patroni moved away after its failed bootstrap) goes too.
        earlier = []
        if holds.persistent(holds_dir, UNFINISHED) is not None:
            earlier = leftover_asides(stack, patroni_moved=True)
            holds.remove_persistent(holds_dir, UNFINISHED)
        try:
            _stop_data_tier(stack, progress)
            set_aside_pgdata(stack, stamp, result.set_aside)
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
        except BaseException as exc:
            _leave_unfinished(stack, result)
            if isinstance(exc, HastackError):
                raise _kept_aside(exc, result) from None
            raise
        try:
            result.removed = discard_aside(result.set_aside) + remove_dirs(earlier)
        except OSError as exc:
            progress.done(f"could not remove every set-aside directory ({exc}); `hastack status`")
        else:
            progress.done(f"removed the set-aside directories ({len(result.removed)})")
    result.total_s = round(clock.monotonic() - t0, 2)


def _leave_unfinished(stack: Stack, result: ClusterRestoreResult) -> None:
    """A restore that failed half way: every Patroni stopped (started by anyone now, with the
    DCS empty, one would create a new, empty cluster), the first node's normal config back,
    and a persistent hold that keeps the watcher off Patroni and `up` from starting it."""
    patronis = stack.programs("patroni")
    for program in patronis:
        with contextlib.suppress(HastackError, OSError):
            stack.supervisor.stop(program.process_name)
    with contextlib.suppress(HastackError, OSError):
        write_patroni_config(stack, stack.plan.postgres_nodes[0], None)
    kept = ", ".join(a.moved_to for a in result.set_aside) or "nothing was set aside"
    holds.place_persistent(
        stack.plan.paths.holds_dir,
        UNFINISHED,
        f"a cluster restore did not finish (the previous data: {kept}); run it again, or "
        "see docs/backups.md#cluster-restore",
        [p.process_name for p in patronis],
    )


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
    if data_tier(stack.snapshot(services=False)).etcd_quorum:
        deleted = clear_dcs(stack)
        progress.done(f"the cluster's {deleted} keys deleted from etcd")
        return f"{deleted} keys deleted"
    progress.step("etcd has no quorum: starting its members afresh")
    sup = stack.supervisor
    etcd = stack.programs("etcd")
    for program in etcd:
        sup.stop(program.process_name)
    set_aside_etcd(stack, stamp, result.set_aside)
    ensure_started(sup, etcd)
    stack.wait(
        lambda: etcd_quorum_reached(stack.snapshot(services=False)),
        what="etcd quorum",
        timeout_s=60,
        interval_s=0.2,
        hint="hastack logs pg1 etcd",
    )
    progress.done("etcd started afresh, quorum")
    return "etcd started afresh"


def _bootstrap_first(
    stack: Stack, target: Target, result: ClusterRestoreResult, progress: Progress
) -> str:
    first = stack.plan.postgres_nodes[0]
    result.bootstrap_node = first.name
    write_patroni_config(stack, first, bootstrap_from_repository(target.kind, target.value))
    progress.step(f"restoring {target.describe()} on {first.name} (Patroni bootstrap)")
    log = stack.plan.paths.program_log(f"{first.name}-patroni")
    failed_before = bootstrap_failures(log)
    ensure_started(stack.supervisor, stack.programs("patroni", group=first.name))

    def leader() -> tuple[str | None, str]:
        if bootstrap_failures(log) > failed_before:
            # Patroni gives up on a bootstrap (and exits): a target the WAL never reaches,
            # the repository unreachable. Retrying would only fail again.
            raise HastackError(
                f"the restore on {first.name} failed: Patroni could not bootstrap the cluster "
                "from the repository",
                f"hastack logs {first.name} patroni; hastack backups (the restorable range)",
                log_lines(log, ("ERROR", "FATAL", "recovery")),
            )
        snap = stack.snapshot(services=False)
        leader = data_tier(snap).leader
        return (leader if leader == first.name else None), members_seen(snap)

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
    ensure_database_when_ready(stack, first.name, timeout_s=60)
    return first.name


def _start_replicas(stack: Stack, progress: Progress) -> None:
    plan = stack.plan
    others = [p for p in stack.programs("patroni") if p.group != plan.postgres_nodes[0].name]
    progress.step("starting the other nodes (replicas from the repository)")
    ensure_started(stack.supervisor, others)
    want = len(plan.postgres_nodes) - 1

    def streaming() -> tuple[bool | None, str]:
        snap = stack.snapshot(services=False)
        return replicas_streaming(snap, want, plan.spec.postgres.synchronous_mode)

    stack.wait(
        streaming,
        what="every replica streaming",
        timeout_s=REPLICAS_DEADLINE_S,
        interval_s=0.5,
        hint="hastack status; hastack logs pg2 patroni",
    )


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
