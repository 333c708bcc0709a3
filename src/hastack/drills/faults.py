"""Fault primitives: each targets exactly one node (by its system user) or one component.

Node faults act on every process of the node's user: its etcd member, Patroni and
PostgreSQL with all its backends (PostgreSQL is not a supervisord child, so the supervisor
alone cannot reach it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from hastack.drills.events import History
from hastack.render.secrets import Secrets
from hastack.runtime.lifecycle import ensure_started, programs_of
from hastack.runtime.snapshot import postmaster_pid
from hastack.runtime.supervisor import Supervisor
from hastack.spec.plan import Node, StackPlan
from hastack.tools import iptables


class FaultError(Exception):
    pass


@dataclass
class DrillContext:
    plan: StackPlan
    sup: Supervisor
    secrets: Secrets
    history: History
    primary: str
    """The leader when the fault is injected."""
    sync_standby: str | None

    def node(self, name: str) -> Node:
        return self.plan.node(name)


Action = Callable[[DrillContext], None]
"""A fault or its heal, applied to the stack under drill."""


def nothing(_ctx: DrillContext) -> None:
    """The heal of a fault that heals itself (a killed process the supervisor restarts)."""
    return None


def node_pids(node: Node) -> list[int]:
    return [p.pid for p in psutil.process_iter(["username"]) if p.info["username"] == node.user]


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill_postmaster(ctx: DrillContext, name: str) -> None:
    pid = postmaster_pid(ctx.node(name))
    if pid is None:
        raise FaultError(f"{name} has no running postmaster")
    os.kill(pid, signal.SIGKILL)
    ctx.history.mark("fault", f"SIGKILL postmaster of {name} (pid {pid})", node=name)


def kill_patroni(ctx: DrillContext, name: str) -> None:
    pid = ctx.sup.process(f"{name}:{name}-patroni").pid
    if pid <= 0:
        raise FaultError(f"{name}'s Patroni is not running")
    os.kill(pid, signal.SIGKILL)
    ctx.history.mark(
        "fault", f"SIGKILL Patroni of {name} (pid {pid}); supervisord restarts it", node=name
    )


def lose_node(ctx: DrillContext, name: str) -> None:
    """Every process of the node dies and nothing restarts it: freeze them all first (so none
    reacts), stop the node's supervisor group (no autorestart), then SIGKILL."""
    node = ctx.node(name)
    pids = node_pids(node)
    _signal_all(pids, signal.SIGSTOP)
    ctx.sup.stop_group(name, wait=False)
    _signal_all(pids, signal.SIGKILL)
    ctx.history.mark("fault", f"node {name} lost: {len(pids)} processes killed", node=name)
    deadline = time.monotonic() + 5
    while node_pids(node) and time.monotonic() < deadline:
        _signal_all(node_pids(node), signal.SIGKILL)
        time.sleep(0.02)


def restore_node(ctx: DrillContext, name: str) -> None:
    """Start the node's programs again (etcd first); a fenced or lost node rejoins."""
    programs = [p for c in ("etcd", "patroni") for p in programs_of(ctx.plan, c) if p.group == name]
    # The group may still be STOPPING from the fault; wait for supervisord to settle.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = {i.process_name: i.state for i in ctx.sup.processes()}
        if all(states.get(p.process_name) != "STOPPING" for p in programs):
            break
        time.sleep(0.05)
    started = ensure_started(ctx.sup, programs)
    ctx.history.mark(
        "heal", f"node {name} started again ({', '.join(started) or 'already running'})", node=name
    )


def freeze_node(ctx: DrillContext, name: str) -> None:
    pids = node_pids(ctx.node(name))
    _signal_all(pids, signal.SIGSTOP)
    ctx.history.mark("fault", f"node {name} frozen: SIGSTOP to {len(pids)} processes", node=name)


def thaw_node(ctx: DrillContext, name: str) -> None:
    pids = node_pids(ctx.node(name))
    _signal_all(pids, signal.SIGCONT)
    ctx.history.mark("heal", f"node {name} thawed: SIGCONT to {len(pids)} processes", node=name)
    if not pids:  # fenced while frozen: bring it back
        restore_node(ctx, name)


def partition_node(ctx: DrillContext, name: str, cut_balancer: bool) -> None:
    """Cut `name` off from the other nodes, both ways (and from HAProxy if asked)."""
    chain = ctx.plan.iptables_chain
    node = ctx.node(name)
    iptables.ensure_chain(chain)
    for other in ctx.plan.nodes:
        if other.name == name:
            continue
        iptables.drop_from_user_to(chain, node.user, other.address)
        iptables.drop_from_user_to(chain, other.user, node.address)
    if cut_balancer:
        iptables.drop_from_user_to(chain, ctx.plan.service_users["haproxy"], node.address)
    what = "the other nodes and HAProxy" if cut_balancer else "the other nodes"
    ctx.history.mark("fault", f"node {name} cut off from {what} (iptables {chain})", node=name)


def heal_partition(ctx: DrillContext, name: str) -> None:
    removed = iptables.remove_chain(ctx.plan.iptables_chain)
    ctx.history.mark(
        "heal", f"network to {name} restored" + ("" if removed else " (no rules left)"), node=name
    )


def stop_etcd_members(ctx: DrillContext, names: list[str]) -> None:
    for name in names:
        ctx.sup.stop(f"{name}:{name}-etcd", wait=False)
    members = ", ".join(f"etcd on {n}" for n in names)
    ctx.history.mark("fault", f"stopped {members}: etcd has no quorum")


def start_etcd_members(ctx: DrillContext, names: list[str]) -> None:
    for name in names:
        ctx.sup.start(f"{name}:{name}-etcd", wait=False)
    ctx.history.mark("heal", "etcd members started again: quorum returns")


def freeze_etcd(ctx: DrillContext) -> None:
    pids = [ctx.sup.process(p.process_name).pid for p in programs_of(ctx.plan, "etcd")]
    _signal_all([p for p in pids if p > 0], signal.SIGSTOP)
    ctx.history.mark("fault", f"every etcd member frozen ({len(pids)}): the DCS is unreachable")


def thaw_etcd(ctx: DrillContext) -> None:
    pids = [ctx.sup.process(p.process_name).pid for p in programs_of(ctx.plan, "etcd")]
    _signal_all([p for p in pids if p > 0], signal.SIGCONT)
    ctx.history.mark("heal", "etcd members thawed")


def restart_pooler(ctx: DrillContext) -> None:
    ctx.history.mark("fault", "PgBouncer restarted (graceful stop, then start)")
    ctx.sup.stop("pgbouncer:pgbouncer")
    ctx.sup.start("pgbouncer:pgbouncer")
    ctx.history.mark("note", "PgBouncer running again")
