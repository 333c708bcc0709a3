"""Start and stop a stack's programs in dependency order.

supervisord orders only spawning and stops a group's processes all at once; stopping etcd with
Patroni, or the last Patroni after etcd lost quorum, leaves a leader key behind or a primary
that cannot shut down cleanly. So the order lives here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psutil

from hastack.render.programs import Program, stack_programs
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.snapshot import postmaster_pid
from hastack.runtime.supervisor import Supervisor
from hastack.spec.plan import StackPlan
from hastack.tools.base import run
from hastack.tools.etcd_api import EtcdClient, EtcdUnavailable

ACTIVE_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF"})


def programs_of(plan: StackPlan, component: str) -> list[Program]:
    return [p for p in stack_programs(plan) if p.component == component]


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


def current_leader(plan: StackPlan) -> str | None:
    """The Patroni leader by a linearizable etcd read; None if none or etcd is unreachable."""
    try:
        return EtcdClient(plan.etcd_client_urls, timeout_s=0.5).get(plan.leader_key())
    except EtcdUnavailable:
        return None


def stop_postgres_leftovers(plan: StackPlan) -> list[str]:
    """PostgreSQL outlives a killed Patroni (it is detached). Stop any still running with
    pg_ctl as the node's user; return the nodes where one had to be stopped."""
    stopped = []
    for node in plan.postgres_nodes:
        if postmaster_pid(node) is None:
            continue
        run(
            [
                str(plan.postgres_bin_dir / "pg_ctl"),
                "stop",
                "-D",
                str(node.paths.pgdata),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
            ],
            user=node.user,
            timeout_s=70,
        )
        stopped.append(node.name)
    return stopped


def stack_processes(plan: StackPlan) -> list[psutil.Process]:
    users = set(plan.all_users)
    found = []
    for proc in psutil.process_iter(["username"]):
        if proc.info["username"] in users:
            found.append(proc)
    return found


def kill_leftovers(plan: StackPlan, grace_s: float = 5.0) -> list[str]:
    """TERM, then KILL after `grace_s`, every process still running as a stack user."""
    procs = stack_processes(plan)
    described = [f"{p.pid} ({_name(p)}, {p.info['username']})" for p in procs]
    for proc in procs:
        _signal(proc.pid, signal.SIGTERM)
    _gone, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        _signal(proc.pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=grace_s)
    return described


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "?"


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass
class StopResult:
    order: list[str] = field(default_factory=list)
    postgres_stopped_by_pg_ctl: list[str] = field(default_factory=list)
    leftovers_killed: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def stop_patroni_ordered(
    plan: StackPlan, sup: Supervisor, progress: Progress, result: StopResult
) -> None:
    """Replicas' Patroni first (together), the leader's last, so no failover runs during
    shutdown and the leader never waits on a quorum that is already gone."""
    leader = current_leader(plan)
    patronis = programs_of(plan, "patroni")
    replicas = [p for p in patronis if p.group != leader]
    leaders = [p for p in patronis if p.group == leader]
    for batch, role in ((replicas, "replicas"), (leaders, "leader")):
        _stop_many(sup, batch, progress, result, label=role)


def stop_all(plan: StackPlan, sup: Supervisor, progress: Progress | None = None) -> StopResult:
    progress = progress or NullProgress()
    start = time.monotonic()
    result = StopResult()
    if sup.is_running():
        # The watcher first: a leader shutting down must never look like a dead node.
        _stop_many(sup, programs_of(plan, "fencer"), progress, result)
        # The app instances next: they finish their in-flight requests (uvicorn's graceful
        # shutdown) while the database still answers.
        _stop_many(sup, programs_of(plan, "app"), progress, result)
        stop_patroni_ordered(plan, sup, progress, result)
        result.postgres_stopped_by_pg_ctl = stop_postgres_leftovers(plan)
        # One member at a time: stopped together, the raft leader tries to hand leadership
        # to a member that is itself shutting down and stalls ~7 s.
        for program in programs_of(plan, "etcd"):
            _stop_many(sup, [program], progress, result)
        services = [
            p
            for p in stack_programs(plan)
            if p.component not in ("etcd", "patroni", "fencer", "app")
        ]
        _stop_many(sup, services, progress, result)
        progress.step("stopping supervisord")
        sup.shutdown()
    else:
        result.postgres_stopped_by_pg_ctl = stop_postgres_leftovers(plan)
    result.leftovers_killed = kill_leftovers(plan)
    result.elapsed_s = time.monotonic() - start
    return result


def _stop_many(
    sup: Supervisor,
    programs: Sequence[Program],
    progress: Progress,
    result: StopResult,
    label: str = "",
) -> None:
    """Stop programs together and wait until none is STOPPING."""
    if not programs:
        return
    suffix = f" ({label})" if label else ""
    progress.step("stopping " + ", ".join(p.name for p in programs) + suffix)
    for program in programs:
        sup.stop(program.process_name, wait=False)
    deadline = time.monotonic() + max(p.stop_wait_s for p in programs) + 5
    names = {p.process_name for p in programs}
    while time.monotonic() < deadline:
        active = [i for i in sup.processes() if i.process_name in names and i.state == "STOPPING"]
        if not active:
            break
        time.sleep(0.05)
    result.order += [p.name for p in programs]
