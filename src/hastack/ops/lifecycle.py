"""`down`, `destroy` and `restart`: stop in order, delete only what hastack created."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hastack.errors import HastackError
from hastack.ops.deploy import DEPLOY_TARGETS, undeploy
from hastack.polling import WaitTimeout
from hastack.runtime.health import Assessment, assess
from hastack.runtime.lifecycle import StopResult, stop_all
from hastack.runtime.orphans import stack_processes
from hastack.runtime.ownership import OwnershipError, read_marker, remove_users
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack

if TYPE_CHECKING:
    from hastack.render.program import Program

__all__ = [
    "DestroyResult",
    "DownResult",
    "RestartResult",
    "StopResult",
    "destroy",
    "down",
    "restart",
    "restart_targets",
    "wait_healthy",
]


@dataclass
class DownResult:
    was_running: bool
    stop: StopResult


def down(stack: Stack, progress: Progress | None = None) -> DownResult:
    """Stop every process of the stack (ordered), keep all data. A container deployment:
    its services removed, its volumes (the data) kept; `hastack deploy` brings it back."""
    if stack.in_containers:
        started = time.monotonic()
        was_running = bool(stack.snapshot(services=False).supervisor_running)
        undeploy(stack, volumes=False)
        stop = StopResult(order=[f"{stack.plan.spec.target} stack {stack.name}"])
        stop.elapsed_s = round(time.monotonic() - started, 1)
        return DownResult(was_running=was_running, stop=stop)
    was_running = stack.supervisor.is_running() or bool(stack_processes(stack.identity))
    return DownResult(was_running=was_running, stop=stop_all(stack, progress))


@dataclass
class DestroyResult:
    existed: bool
    stop: StopResult | None = None
    removed_dir: str | None = None
    removed_users: list[str] = field(default_factory=list)
    removed_volumes: list[str] = field(default_factory=list)
    """A container deployment's: its named volumes (its data)."""


def destroy(stack: Stack, progress: Progress | None = None) -> DestroyResult:
    """Stop the stack, then delete its state directory and system users, and only those:
    the marker hastack wrote when it created the directory says what is ours."""
    progress = progress or NullProgress()
    plan = stack.plan
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
    volumes: list[str] = []
    if plan.spec.target in DEPLOY_TARGETS:
        progress.step(f"removing the {plan.spec.target} stack {plan.name} and its volumes")
        volumes = undeploy(stack, volumes=True)
    stop = stop_all(stack, progress)
    progress.step(f"deleting {state}")
    shutil.rmtree(state, onerror=_gone_already_is_fine)
    removed = remove_users(marker)
    return DestroyResult(
        existed=True,
        stop=stop,
        removed_dir=str(state),
        removed_users=removed,
        removed_volumes=volumes,
    )


@dataclass
class RestartResult:
    target: str
    restarted: list[str]
    elapsed_s: float
    assessment: Assessment


def restart_targets(stack: Stack) -> dict[str, list[Program]]:
    """What `hastack restart` accepts: a node, a service, or node:component."""
    programs = stack.programs()
    targets: dict[str, list[Program]] = {}
    for program in programs:
        targets.setdefault(program.group, []).append(program)
        if program.group != program.component:
            targets[f"{program.group}:{program.component}"] = [program]
    for component in ("etcd", "patroni"):
        targets[component] = [p for p in programs if p.component == component]
    return targets


def restart(
    stack: Stack, target: str, progress: Progress | None = None, timeout_s: float = 120
) -> RestartResult:
    """Restart a target's programs: Patroni stops before and starts after etcd, and several
    Patroni restart one at a time, replicas first, so the cluster keeps a leader where it can.
    Then wait until the stack is healthy again."""
    progress = progress or NullProgress()
    targets = restart_targets(stack)
    if target not in targets:
        raise HastackError(
            f"unknown target {target!r}; choose one of: {', '.join(targets)}",
            "hastack restart pg2, hastack restart haproxy, hastack restart pg2:etcd",
        )
    if not stack.supervisor.is_running():
        raise HastackError(f"stack {stack.name!r} is not running", "hastack up")
    start = stack.clock.monotonic()
    with stack.hold(timeout_s + 60, f"hastack restart {target}"):
        restarted = _restart_programs(stack, targets[target], progress)
        assessment = wait_healthy(stack, timeout_s, progress)
    return RestartResult(
        target=target,
        restarted=restarted,
        elapsed_s=round(stack.clock.monotonic() - start, 2),
        assessment=assessment,
    )


def _restart_programs(stack: Stack, programs: list[Program], progress: Progress) -> list[str]:
    sup = stack.supervisor
    leader = stack.leader()
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


def wait_healthy(stack: Stack, timeout_s: float, progress: Progress | None = None) -> Assessment:
    """Poll until the stack is healthy; return the last assessment either way."""
    progress = progress or NullProgress()
    progress.step("waiting until the stack is healthy")
    last: list[Assessment] = []

    def check() -> tuple[Assessment | None, str]:
        result = assess(stack.snapshot())
        last[:] = [result]
        return (result if result.healthy else None), "; ".join(result.problems)

    try:
        return stack.wait(check, what="a healthy stack", timeout_s=timeout_s, interval_s=0.5)
    except WaitTimeout:
        return last[0]


def _gone_already_is_fine(
    func: object, path: str, exc_info: tuple[type, BaseException, object]
) -> None:
    """A file that vanished while the tree was being deleted is deleted: a gpg-agent left by
    a dump's encryption removes its own sockets when its directory goes (a clean-clone run
    failed on `S.gpg-agent.ssh`). Any other error stands."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
