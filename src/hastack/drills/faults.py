"""Fault primitives: each targets exactly one node (by its system user) or one component.

Node faults act on every process of the node's user: its etcd member, Patroni and
PostgreSQL with all its backends (PostgreSQL is not a supervisord child, so the supervisor
alone cannot reach it).

A fault's heal only *ends* the fault (the frozen processes continue, the network returns, a
component kept down on purpose may come back): it never repairs what the fault broke. Getting
back to healthy is the stack's own job, and the drill measures it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from hastack.drills.events import History
from hastack.errors import HastackError
from hastack.runtime.stack import Stack
from hastack.spec.plan import Node


@dataclass
class DrillContext:
    stack: Stack
    history: History
    primary: str
    """The leader when the fault is injected."""
    sync_standby: str | None
    held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    """Holds a fault keeps until it is healed (components kept down on purpose)."""
    source: Stack | None = None
    """Region drills: the primary stack the standby cluster under drill replicates from."""

    def node(self, name: str) -> Node:
        return self.stack.plan.node(name)


Action = Callable[[DrillContext], None]
"""A fault or its heal, applied to the stack under drill."""


def nothing(_ctx: DrillContext) -> None:
    """The heal of a fault the stack heals by itself (a killed process, a lost node)."""
    return None


def node_pids(ctx: DrillContext, node: Node) -> list[int]:
    return ctx.stack.node_pids(node)


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill_postmaster(ctx: DrillContext, name: str) -> None:
    pid = ctx.stack.postmaster_pid(ctx.node(name))
    if pid is None:
        raise HastackError(f"{name} has no running postmaster", "hastack status")
    os.kill(pid, signal.SIGKILL)
    ctx.history.mark("fault", f"SIGKILL postmaster of {name} (pid {pid})", node=name)


def kill_program(ctx: DrillContext, process_name: str, node: str | None = None) -> None:
    pid = ctx.stack.supervisor.process(process_name).pid
    if pid <= 0:
        raise HastackError(f"{process_name} is not running", "hastack status")
    os.kill(pid, signal.SIGKILL)
    ctx.history.mark(
        "fault", f"SIGKILL {process_name} (pid {pid}); supervisord restarts it", node=node
    )


def crash_node(ctx: DrillContext, name: str) -> None:
    """A crash: SIGKILL every process of the node at once. supervisord may restart etcd and
    Patroni; the watcher may fence the node first. Nothing is healed by the drill."""
    node = ctx.node(name)
    pids = node_pids(ctx, node)
    signal_all(pids, signal.SIGSTOP)  # none reacts to the others' deaths
    signal_all(pids, signal.SIGKILL)
    ctx.history.mark("fault", f"node {name} crashed: {len(pids)} processes SIGKILLed", node=name)
    ctx.stack.until(
        lambda: not (set(pids) & set(node_pids(ctx, node))),
        what=f"the crashed processes of {name} gone",
        timeout_s=5,
        interval_s=0.02,
    )


def lose_node(ctx: DrillContext, name: str) -> None:
    """A machine that goes away: every process of the node dies and supervisord does not
    restart it (its group is stopped); it comes back only when the watcher brings it back."""
    node = ctx.node(name)
    pids = node_pids(ctx, node)
    signal_all(pids, signal.SIGSTOP)
    if ctx.stack.in_containers:
        # No supervisor to stop: every task of the node dies at once, and the engine
        # starts new ones (a machine that comes back) as a real outage would leave it to.
        how = "its tasks killed; the engine starts new ones"
    else:
        ctx.stack.supervisor.stop_group(name, wait=False)
        how = "its programs stopped"
    signal_all(pids, signal.SIGKILL)
    ctx.history.mark("fault", f"node {name} lost: {len(pids)} processes killed, {how}", node=name)

    def gone() -> bool:
        left = node_pids(ctx, node)
        signal_all(left, signal.SIGKILL)
        return not left

    ctx.stack.until(gone, what=f"every process of {name} gone", timeout_s=5, interval_s=0.02)


def freeze_node(ctx: DrillContext, name: str) -> None:
    pids = node_pids(ctx, ctx.node(name))
    signal_all(pids, signal.SIGSTOP)
    ctx.history.mark("fault", f"node {name} frozen: SIGSTOP to {len(pids)} processes", node=name)


def thaw_node(ctx: DrillContext, name: str) -> None:
    """The stall ends: SIGCONT to whatever of the node is still there (a fenced node has
    nothing left; the watcher brings it back)."""
    pids = node_pids(ctx, ctx.node(name))
    signal_all(pids, signal.SIGCONT)
    ctx.history.mark("heal", f"node {name} thawed: SIGCONT to {len(pids)} processes", node=name)


def partition_node(ctx: DrillContext, name: str, cut_balancer: bool) -> None:
    """Cut `name` off from the other nodes, both ways (and from HAProxy if asked)."""
    plan = ctx.stack.plan
    cut = ctx.stack.netcut()
    node = ctx.node(name)
    cut.ensure()
    owner = ctx.stack.process_owner
    for other in plan.nodes:
        if other.name == name:
            continue
        cut.drop_from_user_to(owner(node.user), other.address)
        cut.drop_from_user_to(owner(other.user), node.address)
    if cut_balancer:
        cut.drop_from_user_to(owner(plan.service_users["haproxy"]), node.address)
    what = "the other nodes and HAProxy" if cut_balancer else "the other nodes"
    ctx.history.mark("fault", f"node {name} cut off from {what} (iptables {cut.chain})", node=name)


def heal_partition(ctx: DrillContext, name: str) -> None:
    removed = ctx.stack.netcut().remove()
    ctx.history.mark(
        "heal", f"network to {name} restored" + ("" if removed else " (no rules left)"), node=name
    )


def keep_down(ctx: DrillContext, process_names: list[str], why: str, hold_s: float) -> None:
    """Stop programs and keep them down (a scoped watcher hold) until `release_kept`: an
    outage of those components, which the stack heals itself once it ends."""
    ctx.held.enter_context(ctx.stack.hold(hold_s + 300, why, scope=process_names))
    for name in process_names:
        ctx.stack.supervisor.stop(name, wait=False)
    ctx.history.mark("fault", f"{', '.join(process_names)} stopped and kept down: {why}")


def release_kept(ctx: DrillContext) -> None:
    """The outage ends: the watcher may start the components again (the drill does not)."""
    ctx.held.close()
    ctx.history.mark("heal", "outage over: the watcher may start the stopped components again")


def freeze_etcd(ctx: DrillContext) -> None:
    sup = ctx.stack.supervisor
    pids = [sup.process(p.process_name).pid for p in ctx.stack.programs("etcd")]
    signal_all([p for p in pids if p > 0], signal.SIGSTOP)
    ctx.history.mark("fault", f"every etcd member frozen ({len(pids)}): the DCS is unreachable")


def thaw_etcd(ctx: DrillContext) -> None:
    sup = ctx.stack.supervisor
    pids = [sup.process(p.process_name).pid for p in ctx.stack.programs("etcd")]
    signal_all([p for p in pids if p > 0], signal.SIGCONT)
    ctx.history.mark("heal", "etcd members thawed")


def restart_pooler(ctx: DrillContext) -> None:
    ctx.history.mark("fault", "PgBouncer restarted (graceful stop, then start)")
    sup = ctx.stack.supervisor
    with ctx.stack.hold(60, "drill: PgBouncer restart", scope=["pgbouncer:pgbouncer"]):
        sup.stop("pgbouncer:pgbouncer")
        sup.start("pgbouncer:pgbouncer")
    ctx.history.mark("note", "PgBouncer running again")
