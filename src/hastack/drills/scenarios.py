"""The drill catalogue: what each scenario breaks, how it heals, and what must hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hastack.drills import faults
from hastack.drills.faults import Action, DrillContext, nothing
from hastack.ops.cluster import switchover
from hastack.spec.plan import StackPlan


@dataclass(frozen=True)
class Expectation:
    """A scenario-specific promise, checked against the drill's results."""

    leader_changes: bool | None = None
    """True: a new leader must take over; False: the leader must stay; None: either."""
    no_url_errors: bool = False
    """DATABASE_URL clients must see no error at all."""
    leader_stays_writable: bool = False
    """The leader must never stop being primary (no demotion)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Action
    heal: Action = nothing
    hold_s: Callable[[StackPlan], float] = field(default=lambda _plan: 0.0)
    """Minimum time the fault stays in place before `heal`."""
    recover_before_heal: bool = True
    """Writes must resume while the fault is still in place (a failover); otherwise only
    after healing (e.g. a lost etcd quorum without failsafe mode)."""
    expect: Expectation = Expectation()
    slow: bool = False
    """Long (tens of seconds): not in the default test run."""
    failsafe: bool | None = None
    """Run with Patroni's failsafe_mode forced on/off (restored afterwards); None: as spec."""
    pinned_writer: bool = True
    """Also write straight to the old primary's address (a client with a stale route)."""


def _on_primary(action: Callable[[DrillContext, str], None]) -> Action:
    return lambda ctx: action(ctx, ctx.primary)


def _on_sync(action: Callable[[DrillContext, str], None]) -> Action:
    def run(ctx: DrillContext) -> None:
        if ctx.sync_standby is None:
            raise faults.FaultError("the cluster has no synchronous standby")
        action(ctx, ctx.sync_standby)

    return run


def _replica_nodes(ctx: DrillContext) -> list[str]:
    return [n.name for n in ctx.plan.etcd_nodes if n.name != ctx.primary][:2]


def _partition(cut_balancer: bool) -> Action:
    return lambda ctx: faults.partition_node(ctx, ctx.primary, cut_balancer)


def _switchover(ctx: DrillContext) -> None:
    ctx.history.mark("fault", f"planned switchover from {ctx.primary} requested")
    change = switchover(ctx.plan)
    ctx.history.mark(
        "note",
        f"switchover done: {change.old_leader} -> {change.new_leader}, writable after "
        f"{change.writable_after_s} s",
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "kill-postmaster",
            "SIGKILL PostgreSQL's postmaster on the primary; Patroni restarts it in place",
            inject=_on_primary(faults.kill_postmaster),
            expect=Expectation(leader_changes=False),
        ),
        Scenario(
            "kill-patroni",
            "SIGKILL Patroni on the primary; supervisord restarts it, PostgreSQL keeps running",
            inject=_on_primary(faults.kill_patroni),
            expect=Expectation(leader_changes=False),
        ),
        Scenario(
            "node-loss",
            "every process of the primary's node killed, nothing restarted until healed",
            inject=_on_primary(faults.lose_node),
            heal=_on_primary(faults.restore_node),
            expect=Expectation(leader_changes=True),
        ),
        Scenario(
            "freeze-primary",
            "SIGSTOP every process of the primary's node for longer than the TTL, then SIGCONT",
            inject=_on_primary(faults.freeze_node),
            heal=_on_primary(faults.thaw_node),
            hold_s=lambda plan: plan.spec.patroni.ttl_s + 5.0,
            expect=Expectation(leader_changes=True),
            slow=True,
        ),
        Scenario(
            "partition-primary",
            "cut the primary off from the other nodes (HAProxy still reaches it)",
            inject=_partition(cut_balancer=False),
            heal=_on_primary(faults.heal_partition),
            expect=Expectation(leader_changes=True),
            slow=True,
        ),
        Scenario(
            "partition-primary-lb",
            "cut the primary off from the other nodes and from HAProxy",
            inject=_partition(cut_balancer=True),
            heal=_on_primary(faults.heal_partition),
            expect=Expectation(leader_changes=True),
            slow=True,
        ),
        Scenario(
            "sync-replica-loss",
            "the synchronous standby's node dies; writes continue once the sync role moves",
            inject=_on_sync(faults.lose_node),
            heal=_on_sync(faults.restore_node),
            expect=Expectation(leader_changes=False, leader_stays_writable=True),
        ),
        Scenario(
            "etcd-quorum-loss",
            "two of three etcd members down for 30 s, failsafe_mode on: the primary keeps writing",
            inject=lambda ctx: faults.stop_etcd_members(ctx, _replica_nodes(ctx)),
            heal=lambda ctx: faults.start_etcd_members(ctx, _replica_nodes(ctx)),
            hold_s=lambda _plan: 30.0,
            expect=Expectation(
                leader_changes=False, no_url_errors=True, leader_stays_writable=True
            ),
            failsafe=True,
            slow=True,
        ),
        Scenario(
            "etcd-quorum-loss-no-failsafe",
            "two of three etcd members down for 30 s, failsafe_mode off: writes stop until "
            "quorum returns",
            inject=lambda ctx: faults.stop_etcd_members(ctx, _replica_nodes(ctx)),
            heal=lambda ctx: faults.start_etcd_members(ctx, _replica_nodes(ctx)),
            hold_s=lambda _plan: 30.0,
            recover_before_heal=False,
            failsafe=False,
            slow=True,
        ),
        Scenario(
            "dcs-blip",
            "every etcd member frozen for less than retry_timeout: no promotion, no demotion",
            inject=faults.freeze_etcd,
            heal=faults.thaw_etcd,
            hold_s=lambda plan: max(1.0, plan.spec.patroni.retry_timeout_s - 2.0),
            expect=Expectation(leader_changes=False, leader_stays_writable=True),
        ),
        Scenario(
            "switchover",
            "planned switchover to the synchronous standby, PgBouncer paused around it",
            inject=_switchover,
            expect=Expectation(leader_changes=True, no_url_errors=True),
            pinned_writer=False,
        ),
        Scenario(
            "pooler-restart",
            "PgBouncer stopped and started under load",
            inject=faults.restart_pooler,
            expect=Expectation(leader_changes=False),
        ),
    ]
}

DEFAULT_TEST_SCENARIOS = ("kill-postmaster", "switchover", "node-loss")
"""Run by `make test`; the rest are marked slow."""
