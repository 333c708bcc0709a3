"""Start and stop a stack's programs in dependency order.

supervisord orders only spawning and stops a group's processes all at once; stopping etcd with
Patroni, or the last Patroni after etcd lost quorum, leaves a leader key behind or a primary
that cannot shut down cleanly. So the order lives here.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hastack.render.programs import Program
from hastack.runtime.orphans import (
    TERM_GRACE_S,
    StackProcess,
    find_orphans,
    signal_and_wait,
    stack_processes,
)
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.snapshot import postmaster_pid
from hastack.runtime.supervisor import Supervisor
from hastack.tools.base import run

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack

ACTIVE_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF"})

STOP_SIGNALS = {"pgbouncer": signal.SIGINT}
"""How each component stops gracefully (PgBouncer exits at once with status 1 on TERM)."""


def ensure_started(sup: Supervisor, programs: Iterable[Program]) -> list[str]:
    """Start each program that is not running (without waiting); return the names started."""
    states = {i.process_name: i.state for i in sup.processes()}
    started = []
    for program in programs:
        if states.get(program.process_name) in ACTIVE_STATES:
            continue
        sup.start(program.process_name, wait=False)
        started.append(program.name)
    return started


def stop_postgres_leftovers(stack: Stack) -> list[str]:
    """PostgreSQL outlives a killed Patroni (it is detached). Stop any still running with
    pg_ctl as the node's user; return the nodes where one had to be stopped."""
    plan = stack.plan
    stopped = []
    for node in plan.postgres_nodes:
        if postmaster_pid(node) is None:
            continue
        pg_ctl = str(plan.postgres_bin_dir / "pg_ctl")
        argv = [pg_ctl, "stop", "-D", str(node.paths.pgdata), "-m", "fast", "-w", "-t", "60"]
        run(argv, user=node.user, timeout_s=70)
        stopped.append(node.name)
    return stopped


def kill_leftovers(stack: Stack, grace_s: float = 5.0) -> list[str]:
    """TERM, then KILL after `grace_s`, every process of the stack still running."""
    procs = stack_processes(stack.identity)
    if procs:
        signal_and_wait([p.pid for p in procs], signal.SIGTERM, stack.clock, grace_s)
    return [f"{p.pid} ({p.name}, {p.user})" for p in procs]


@dataclass
class StopResult:
    order: list[str] = field(default_factory=list)
    postgres_stopped_by_pg_ctl: list[str] = field(default_factory=list)
    leftovers_killed: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def stop_patroni_ordered(stack: Stack, progress: Progress, result: StopResult) -> None:
    """Replicas' Patroni first (together), the leader's last, so no failover runs during
    shutdown and the leader never waits on a quorum that is already gone."""
    leader = stack.leader()
    patronis = stack.programs("patroni")
    replicas = [p for p in patronis if p.group != leader]
    leaders = [p for p in patronis if p.group == leader]
    for batch, role in ((replicas, "replicas"), (leaders, "leader")):
        _stop_many(stack, batch, progress, result, label=role)


def stop_all(stack: Stack, progress: Progress | None = None) -> StopResult:
    progress = progress or NullProgress()
    start = stack.clock.monotonic()
    result = StopResult()
    sup = stack.supervisor
    if sup.is_running():
        # The watcher first: a leader shutting down must never look like a dead node.
        _stop_many(stack, stack.programs("fencer"), progress, result)
        # The app instances next: they finish their in-flight requests (uvicorn's graceful
        # shutdown) while the database still answers.
        _stop_many(stack, stack.programs("app"), progress, result)
        stop_patroni_ordered(stack, progress, result)
        result.postgres_stopped_by_pg_ctl = stop_postgres_leftovers(stack)
        # One member at a time: stopped together, the raft leader tries to hand leadership
        # to a member that is itself shutting down and stalls ~7 s.
        for program in stack.programs("etcd"):
            _stop_many(stack, [program], progress, result)
        services = [
            p for p in stack.programs() if p.component not in ("etcd", "patroni", "fencer", "app")
        ]
        _stop_many(stack, services, progress, result)
        progress.step("stopping supervisord")
        sup.shutdown()
    else:
        orphans = find_orphans(stack.identity, None)
        if orphans:
            progress.step(f"supervisord is gone: stopping its {len(orphans)} orphans in order")
        stop_orphans(stack, orphans, progress, result)
        result.postgres_stopped_by_pg_ctl = stop_postgres_leftovers(stack)
    result.leftovers_killed = kill_leftovers(stack)
    result.elapsed_s = stack.clock.monotonic() - start
    return result


ORPHAN_STOP_ORDER = (
    "watcher",
    "app",
    "backup",
    "haproxy",
    "pgbouncer",
    "redis",
    "pgbackrest",
    "other",
    "patroni",
)


def stop_orphans(
    stack: Stack, orphans: Sequence[StackProcess], progress: Progress, result: StopResult
) -> None:
    """The same order as with supervisord, by signal: the watcher, the app instances, the
    services, Patroni replicas then the leader's Patroni (it stops PostgreSQL and releases
    its key), then etcd members one at a time."""
    leader = stack.leader()
    batches: list[list[StackProcess]] = []
    for component in ORPHAN_STOP_ORDER:
        mine = [o for o in orphans if o.component == component]
        if component == "patroni":
            batches += [
                [o for o in mine if o.unit != leader],
                [o for o in mine if o.unit == leader],
            ]
        else:
            batches.append(mine)
    batches += [[o] for o in orphans if o.component == "etcd"]
    for batch in (b for b in batches if b):
        progress.step("stopping " + ", ".join(o.describe() for o in batch))
        sig = STOP_SIGNALS.get(batch[0].component, signal.SIGTERM)
        grace = 70.0 if batch[0].component == "patroni" else TERM_GRACE_S
        signal_and_wait([o.pid for o in batch], sig, stack.clock, grace)
        result.order += [f"{o.unit}-{o.component}" for o in batch]


def _stop_many(
    stack: Stack,
    programs: Sequence[Program],
    progress: Progress,
    result: StopResult,
    label: str = "",
) -> None:
    """Stop programs together and wait until none is STOPPING."""
    if not programs:
        return
    sup = stack.supervisor
    suffix = f" ({label})" if label else ""
    progress.step("stopping " + ", ".join(p.name for p in programs) + suffix)
    for program in programs:
        sup.stop(program.process_name, wait=False)
    sup.wait_stopped(
        [p.process_name for p in programs], timeout_s=max(p.stop_wait_s for p in programs) + 5
    )
    result.order += [p.name for p in programs]
