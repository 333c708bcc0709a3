"""`down`, `destroy` and `restart`: stop in order, delete only what hastack created."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

from hastack.render.programs import Program, stack_programs
from hastack.runtime import secret_store
from hastack.runtime.fencer import hold
from hastack.runtime.health import Assessment, assess
from hastack.runtime.lifecycle import StopResult, current_leader, stack_processes, stop_all
from hastack.runtime.ownership import OwnershipError, read_marker
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.snapshot import supervisor_for, take_snapshot
from hastack.runtime.supervisor import Supervisor
from hastack.runtime.waits import WaitTimeout, wait_for
from hastack.spec.plan import StackPlan
from hastack.tools.system_users import delete_system_user, user_exists


@dataclass
class DownResult:
    was_running: bool
    stop: StopResult


def down(plan: StackPlan, progress: Progress | None = None) -> DownResult:
    """Stop every process of the stack (ordered), keep all data."""
    sup = supervisor_for(plan)
    was_running = sup.is_running() or bool(stack_processes(plan))
    return DownResult(was_running=was_running, stop=stop_all(plan, sup, progress))


@dataclass
class DestroyResult:
    existed: bool
    stop: StopResult | None = None
    removed_dir: str | None = None
    removed_users: list[str] = field(default_factory=list)


def destroy(plan: StackPlan, progress: Progress | None = None) -> DestroyResult:
    """Stop the stack, then delete its state directory and system users, and only those:
    the marker hastack wrote when it created the directory says what is ours."""
    progress = progress or NullProgress()
    state = plan.paths.state_dir
    marker = read_marker(plan.paths.marker)
    if marker is None:
        if state.exists() and any(state.iterdir()):
            raise OwnershipError(
                f"{state} was not created by hastack (no {plan.paths.marker.name}); "
                "refusing to delete it"
            )
        return DestroyResult(existed=False)
    if marker.stack != plan.name:
        raise OwnershipError(
            f"{state} belongs to stack {marker.stack!r}, not {plan.name!r}; refusing to delete it"
        )
    stop = stop_all(plan, supervisor_for(plan), progress)
    progress.step(f"deleting {state}")
    shutil.rmtree(state)
    removed = []
    for user in marker.users:
        if user_exists(user):
            delete_system_user(user)
            removed.append(user)
    return DestroyResult(existed=True, stop=stop, removed_dir=str(state), removed_users=removed)


@dataclass
class RestartResult:
    target: str
    restarted: list[str]
    elapsed_s: float
    assessment: Assessment


class UnknownTarget(Exception):
    pass


def restart_targets(plan: StackPlan) -> dict[str, list[Program]]:
    """What `hastack restart` accepts: a node, a service, or node:component."""
    programs = stack_programs(plan)
    targets: dict[str, list[Program]] = {}
    for program in programs:
        targets.setdefault(program.group, []).append(program)
        if program.group != program.component:
            targets[f"{program.group}:{program.component}"] = [program]
    for component in ("etcd", "patroni"):
        targets[component] = [p for p in programs if p.component == component]
    return targets


def restart(
    plan: StackPlan, target: str, progress: Progress | None = None, timeout_s: float = 120
) -> RestartResult:
    """Restart a target's programs: Patroni stops before and starts after etcd, and several
    Patroni restart one at a time, replicas first, so the cluster keeps a leader where it can.
    Then wait until the stack is healthy again."""
    progress = progress or NullProgress()
    targets = restart_targets(plan)
    if target not in targets:
        raise UnknownTarget(f"unknown target {target!r}; choose one of: {', '.join(targets)}")
    sup = supervisor_for(plan)
    if not sup.is_running():
        raise UnknownTarget(f"stack {plan.name!r} is not running; use `hastack up`")
    start = time.monotonic()
    programs = targets[target]
    with hold(plan.paths.fencer_hold, timeout_s + 60, f"hastack restart {target}"):
        restarted = _restart_programs(plan, sup, programs, progress)
        assessment = wait_healthy(plan, timeout_s, progress)
    return RestartResult(
        target=target,
        restarted=restarted,
        elapsed_s=round(time.monotonic() - start, 2),
        assessment=assessment,
    )


def _restart_programs(
    plan: StackPlan, sup: Supervisor, programs: list[Program], progress: Progress
) -> list[str]:
    leader = current_leader(plan)
    patroni = sorted(
        (p for p in programs if p.component == "patroni"), key=lambda p: p.group == leader
    )
    others = [p for p in programs if p.component != "patroni"]
    # Patroni first down, last up: it must never run without its local etcd member's peers.
    for program in patroni:
        progress.step(f"stopping {program.name}")
        sup.stop(program.process_name)
    for program in others:
        progress.step(f"restarting {program.name}")
        sup.stop(program.process_name)
        sup.start(program.process_name)
    for program in patroni:
        progress.step(f"starting {program.name}")
        sup.start(program.process_name)
    return [p.name for p in patroni + others]


def wait_healthy(plan: StackPlan, timeout_s: float, progress: Progress | None = None) -> Assessment:
    """Poll until the stack is healthy; return the last assessment either way."""
    progress = progress or NullProgress()
    progress.step("waiting until the stack is healthy")
    sup = supervisor_for(plan)
    secrets = secret_store.load(plan.paths.secrets_dir)
    last: list[Assessment] = []

    def check() -> tuple[Assessment | None, str]:
        result = assess(take_snapshot(plan, sup, secrets))
        last[:] = [result]
        return (result if result.healthy else None), "; ".join(result.problems)

    try:
        return wait_for(check, what="a healthy stack", timeout_s=timeout_s, interval_s=0.5)
    except WaitTimeout:
        return last[0]
