"""The drill catalogue: what each scenario breaks, how the fault ends, and what must hold.

Data-tier drills run SQL writers; web-tier drills run HTTP clients through HAProxy and, beside
them, a light SQL canary (so that split brain is measured the same way for both). No heal
repairs anything: it only ends the fault (SIGCONT, the network back, a component allowed back
up); the stack must heal itself, and `healthy_again_s` measures how long that took.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from hastack.drills import faults, hosts
from hastack.drills.alerting import AlertPromise
from hastack.drills.backup_failover import after_the_failover, lose_leader_during_backup
from hastack.drills.cluster_loss import lose_every_node, restore_from_repository
from hastack.drills.faults import Action, DrillContext, nothing
from hastack.drills.overload import OVERLOAD_FACTOR, OVERLOAD_S, end_overload, overload
from hastack.drills.pitr import pitr_fault, pitr_restore
from hastack.drills.rebuild import await_rebuild, lose_data_directory
from hastack.drills.region_loss import lose_the_primary_region, promote_the_standby
from hastack.errors import HastackError
from hastack.ops.app import restart_app
from hastack.ops.cluster import switchover
from hastack.ops.secrets import rotate_secret
from hastack.runtime.apptier import reload_haproxy
from hastack.runtime.stack import Venue
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
    zero_failed_reads: bool = False
    """Web: idempotent requests never fail (HAProxy retries them on another instance)."""
    zero_failed_requests: bool = False
    """Web: no request fails at all."""
    instances_stay_in_rotation: bool = False
    """Web: HAProxy never marks an app instance down (a shared dependency's fault must not
    empty the pool)."""
    no_database_requests_ok: bool = False
    """Web: requests that need no database (the `http-nodb` client's `/whoami`) never fail."""
    rebuilt_from_repository: bool = False
    """replica-rebuild: Patroni recreates the replica from the backup repository
    (drills/rebuild.py)."""
    pitr_exact: bool = False
    """pitr: the restored copy holds exactly what was acknowledged before the restore point
    (drills/pitr.py)."""
    backup_survives_failover: bool = False
    """backup-under-failover: the interrupted backup completed or failed cleanly, the next
    one succeeded, the archive has no gap, writes stopped no longer than a node loss
    (drills/backup_failover.py)."""
    restored_within_archive_bound: bool = False
    """cluster-loss: the cluster comes back from the repository, and the acknowledged writes
    lost were all acknowledged within archive_timeout (+ a margin) of the fault
    (drills/cluster_loss.py)."""
    promoted_within_lag: bool = False
    """region-loss: the standby cluster promoted within the target, and the acknowledged
    writes lost all within the replication lag reported before the fault
    (drills/region_loss.py)."""
    load_shed_by_haproxy: bool = False
    """Web, overload: HAProxy answers the excess 503 + Retry-After itself, no instance
    answers 5xx or is marked down, admitted requests stay fast (drills/overload.py)."""
    alerts: AlertPromise = field(default_factory=AlertPromise)
    """Alerts the fault must raise, or that it must page nobody (drills/alerting.py);
    checked when the stack has monitoring."""


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Action
    heal: Action = nothing
    """Ends the fault; never repairs (the stack does)."""
    hold_s: Callable[[StackPlan], float] = field(default=lambda _plan: 0.0)
    """Minimum time the fault stays in place before `heal`."""
    warmup_s: Callable[[StackPlan], float] = field(default=lambda _plan: 0.0)
    """Minimum time writes flow before the fault (cluster-loss: past one archive_timeout, so
    the drill shows writes the repository kept and writes it could not)."""
    recover_before_heal: bool = True
    """Writes must resume while the fault is still in place (a failover); otherwise only
    after the fault ends (e.g. a lost etcd quorum without failsafe mode)."""
    expect: Expectation = Expectation()
    tier: Literal["data", "web"] = "data"
    slow: bool = False
    """Long (tens of seconds): skipped by `hastack drill all --fast`."""
    failsafe: bool | None = None
    """Run with Patroni's failsafe_mode forced on/off (restored afterwards); None: as spec."""
    pinned_writer: bool = True
    """Also write straight to the old primary's address (a client with a stale route)."""
    volume_load: bool = False
    """Web: also run wrk against /health/live through HAProxy, counting non-2xx answers."""
    region: bool = False
    """Runs against a standby cluster's spec; the writers start on its primary stack and
    follow the promotion through a two-host connection string."""


def _on_primary(action: Callable[[DrillContext, str], None]) -> Action:
    return lambda ctx: action(ctx, ctx.primary)


def _on_sync(action: Callable[[DrillContext, str], None]) -> Action:
    def run(ctx: DrillContext) -> None:
        if ctx.sync_standby is None:
            raise HastackError("the cluster has no synchronous standby", "hastack status")
        action(ctx, ctx.sync_standby)

    return run


def _replica_etcd(ctx: DrillContext) -> list[str]:
    """The etcd programs of two nodes that are not the primary: without them, no quorum."""
    nodes = [n.name for n in ctx.stack.plan.etcd_nodes if n.name != ctx.primary][:2]
    return [p.process_name for p in ctx.stack.programs("etcd") if p.group in nodes]


def _etcd_outage(ctx: DrillContext) -> None:
    hold = ctx.stack.plan.spec.patroni.ttl_s * 10.0
    faults.keep_down(ctx, _replica_etcd(ctx), "drill: two etcd members down, no quorum", hold)


def _redis_outage(ctx: DrillContext) -> None:
    faults.keep_down(
        ctx, ["redis:redis"], "drill: Redis down (sessions, cache, rate limits)", 300.0
    )


def _partition(cut_balancer: bool) -> Action:
    return lambda ctx: faults.partition_node(ctx, ctx.primary, cut_balancer)


def _switchover(ctx: DrillContext) -> None:
    ctx.history.mark("fault", f"planned switchover from {ctx.primary} requested")
    change = switchover(ctx.stack)
    ctx.history.mark(
        "note",
        f"switchover done: {change.old_leader} -> {change.new_leader}, writable after "
        f"{change.writable_after_s} s",
    )


def _kill_app_instance(ctx: DrillContext) -> None:
    name = ctx.stack.plan.app_instances[0].name
    faults.kill_program(ctx, f"{name}:{name}")


HAPROXY_RELOADS = 10


def _reload_haproxy(ctx: DrillContext) -> None:
    for n in range(1, HAPROXY_RELOADS + 1):
        reload_haproxy(ctx.stack)
        ctx.history.mark("fault", f"HAProxy reload {n}/{HAPROXY_RELOADS}")
        ctx.stack.clock.sleep(2.0)


def _rolling_restart(ctx: DrillContext) -> None:
    ctx.history.mark("fault", "rolling restart of every app instance")
    result = restart_app(ctx.stack, rolling=True)
    ctx.history.mark("note", f"rolling restart done in {result.elapsed_s:.1f} s")


ROTATED_IN_DRILL = (
    "app_password",
    "app_secret_key",
    "redis_password",
    "haproxy_stats_password",
    "pgbouncer_admin_password",
    "patroni_rest_password",
    "monitor_password",
    "readonly_password",
    "rewind_password",
    "replication_password",
    "postgres_password",
)
"""Every rotated secret but the load-test token: the drill's own clients carry it, and would
be rate limited once it changed (test_67 rotates it)."""


def _rotate_secrets(ctx: DrillContext) -> None:
    for name in ROTATED_IN_DRILL:
        ctx.history.mark("fault", f"hastack secrets rotate {name}")
        # No grace for the app key: the drill proves the old one refused (its clients use
        # API tokens; a browser's session would need a new login).
        result = rotate_secret(ctx.stack, name, grace_s=0)
        if not result.old_refused:
            raise HastackError(f"after rotating {name}, the old value: {result.evidence}")
        ctx.history.mark("note", f"{name} rotated in {result.elapsed_s:.1f} s, old refused")


ETCD_OUTAGE = Scenario(
    "etcd-outage",
    "two of three etcd members kept down",
    inject=_etcd_outage,
    heal=faults.release_kept,
    hold_s=lambda _plan: 30.0,
    slow=True,
)
"""The base of both etcd quorum-loss scenarios."""

LEADER_CHANGED = AlertPromise(fires=("PatroniLeaderChanged",))
"""A failover raises the leader-change ticket. The lost node's PostgresqlDown page fires only
when the node stays down past the rule's `for:` (10 s), and the watcher often brings it back
sooner: not promised."""

DATA_SCENARIOS = [
    Scenario(
        "kill-postmaster",
        "SIGKILL PostgreSQL's postmaster on the primary; Patroni restarts it in place",
        inject=_on_primary(faults.kill_postmaster),
        expect=Expectation(leader_changes=False),
    ),
    Scenario(
        "kill-patroni",
        "SIGKILL Patroni on the primary; supervisord restarts it, PostgreSQL keeps running",
        inject=lambda ctx: faults.kill_program(
            ctx, f"{ctx.primary}:{ctx.primary}-patroni", ctx.primary
        ),
        expect=Expectation(leader_changes=False, alerts=AlertPromise(pages_nobody=True)),
    ),
    Scenario(
        "crash-primary",
        "SIGKILL every process of the primary's node at once; no heal step: the stack must "
        "bring the node back by itself",
        inject=_on_primary(faults.crash_node),
    ),
    Scenario(
        "node-loss",
        "every process of the primary's node killed and its programs stopped (a machine gone); "
        "the watcher brings it back once a new leader holds the key",
        inject=_on_primary(faults.lose_node),
        expect=Expectation(leader_changes=True, alerts=LEADER_CHANGED),
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
        "the synchronous standby's node dies; writes continue once the sync role moves, and "
        "the node comes back by itself",
        inject=_on_sync(faults.lose_node),
        expect=Expectation(leader_changes=False, leader_stays_writable=True),
    ),
    replace(
        ETCD_OUTAGE,
        name="etcd-quorum-loss",
        summary="two of three etcd members down for 30 s, failsafe_mode on: the primary keeps "
        "writing",
        expect=Expectation(leader_changes=False, no_url_errors=True, leader_stays_writable=True),
        failsafe=True,
    ),
    replace(
        ETCD_OUTAGE,
        name="etcd-quorum-loss-no-failsafe",
        summary="two of three etcd members down for 30 s, failsafe_mode off: writes stop until "
        "quorum returns",
        recover_before_heal=False,
        failsafe=False,
    ),
    Scenario(
        "dcs-blip",
        "every etcd member frozen for less than retry_timeout: no promotion, no demotion",
        inject=faults.freeze_etcd,
        heal=faults.thaw_etcd,
        hold_s=lambda plan: max(1.0, plan.spec.patroni.retry_timeout_s - 2.0),
        expect=Expectation(
            leader_changes=False,
            leader_stays_writable=True,
            alerts=AlertPromise(pages_nobody=True),
        ),
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
    Scenario(
        "replica-rebuild",
        "an asynchronous replica's data directory destroyed: Patroni rebuilds it from the "
        "backup repository by itself",
        inject=lose_data_directory,
        heal=await_rebuild,
        expect=Expectation(leader_changes=False, rebuilt_from_repository=True),
    ),
    Scenario(
        "pitr",
        "a restore point, then DROP TABLE under write load: the restore point restored into "
        "a scratch instance holds every write acknowledged before it and none begun after",
        inject=pitr_fault,
        heal=pitr_restore,
        hold_s=lambda _plan: 3.0,
        expect=Expectation(leader_changes=False, pitr_exact=True),
    ),
    Scenario(
        "backup-under-failover",
        "the leader's node lost while a full backup runs: the backup completes or fails "
        "cleanly, the next one succeeds from the new leader, the WAL archive has no gap",
        inject=lose_leader_during_backup,
        heal=after_the_failover,
        expect=Expectation(leader_changes=True, backup_survives_failover=True),
    ),
    Scenario(
        "cluster-loss",
        "every node lost at once under write load (processes killed, PostgreSQL and etcd data "
        "deleted); `hastack restore --target cluster --latest` brings it back from the "
        "repository, losing only writes not yet archived",
        inject=lose_every_node,
        heal=restore_from_repository,
        hold_s=lambda _plan: 2.0,
        warmup_s=lambda plan: 1.5 * plan.spec.backup.archive_timeout_s,
        recover_before_heal=False,
        expect=Expectation(restored_within_archive_bound=True),
        pinned_writer=False,
    ),
    Scenario(
        "region-loss",
        "run against a standby cluster: every process of the primary stack's region killed "
        "at one instant under write load; `hastack promote-standby` makes the standby the "
        "primary; writes lost only within the replication lag reported just before",
        inject=lose_the_primary_region,
        heal=promote_the_standby,
        hold_s=lambda _plan: 2.0,
        recover_before_heal=False,
        expect=Expectation(promoted_within_lag=True),
        pinned_writer=False,
        region=True,
    ),
]

HOST_SCENARIOS = [
    Scenario(
        "host-loss",
        "the primary's host loses its power (every process killed, its link down); with "
        "fencing.command the watcher fences it and releases its key, and brings it back "
        "with fencing.unfence_command (lab only)",
        inject=hosts.lose_host,
        heal=hosts.power_returns,
        expect=Expectation(leader_changes=True),
        pinned_writer=False,
    ),
    Scenario(
        "host-partition",
        "the primary's host cut off from every other host (its cable pulled) for longer "
        "than the TTL, then plugged back in (lab only)",
        inject=hosts.unplug_host,
        heal=hosts.plug_host,
        hold_s=lambda plan: plan.spec.patroni.ttl_s + 5.0,
        expect=Expectation(leader_changes=True),
        pinned_writer=False,
        slow=True,
    ),
    Scenario(
        "slow-link",
        f"the primary's host on a {hosts.SLOW_RATE_KBIT} kbit/s link losing "
        f"{hosts.SLOW_LOSS_PERCENT:g} % of its packets for {hosts.SLOW_HOLD_S:.0f} s: slow, "
        "not dead, so no failover (lab only)",
        inject=hosts.slow_host,
        heal=hosts.fast_again,
        hold_s=lambda _plan: hosts.SLOW_HOLD_S,
        expect=Expectation(leader_changes=False),
        pinned_writer=False,
    ),
]
"""Whole hosts, in the lab only: the pinned writer (a client straight to the old primary's
address) runs on this machine, outside every host, and measures nothing a host fault does."""

WEB_SCENARIOS = [
    Scenario(
        "app-instance-kill",
        "SIGKILL one app instance under HTTP load; supervisord restarts it",
        inject=_kill_app_instance,
        expect=Expectation(zero_failed_reads=True),
        tier="web",
    ),
    Scenario(
        "redis-down",
        "Redis down for 10 s under HTTP load: the app keeps serving, degraded; the watcher "
        "starts Redis again once the outage ends",
        inject=_redis_outage,
        heal=faults.release_kept,
        hold_s=lambda _plan: 10.0,
        expect=Expectation(zero_failed_requests=True),
        tier="web",
    ),
    Scenario(
        "rolling-restart",
        "hastack app restart --rolling under HTTP load",
        inject=_rolling_restart,
        expect=Expectation(zero_failed_requests=True),
        tier="web",
        volume_load=True,
    ),
    Scenario(
        "haproxy-reload",
        f"{HAPROXY_RELOADS} HAProxy reloads, 2 s apart, under HTTP load",
        inject=_reload_haproxy,
        expect=Expectation(zero_failed_requests=True),
        tier="web",
        volume_load=True,
    ),
    Scenario(
        "secret-rotation",
        "every secret but the load-test token rotated in turn under HTTP load (app_password, "
        "app_secret_key and Redis's password restart every app instance, one at a time)",
        inject=_rotate_secrets,
        expect=Expectation(zero_failed_requests=True),
        tier="web",
        slow=True,
        volume_load=True,
    ),
    Scenario(
        "overload",
        f"{OVERLOAD_FACTOR} x the connections the app tier admits, for {OVERLOAD_S:.0f} s, on "
        "the database-backed list: HAProxy sheds the excess",
        inject=overload,
        heal=end_overload,
        hold_s=lambda _plan: OVERLOAD_S,
        expect=Expectation(instances_stay_in_rotation=True, load_shed_by_haproxy=True),
        tier="web",
    ),
    Scenario(
        "db-failover-under-http-load",
        "the PostgreSQL primary's node lost under HTTP load: the error window clients see",
        inject=_on_primary(faults.lose_node),
        expect=Expectation(
            leader_changes=True,
            instances_stay_in_rotation=True,
            no_database_requests_ok=True,
            alerts=LEADER_CHANGED,
        ),
        tier="web",
    ),
]

SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in [*DATA_SCENARIOS, *HOST_SCENARIOS, *WEB_SCENARIOS]
}


def scenario(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise HastackError(f"unknown drill {name!r}", "hastack drill list shows them all")
    return SCENARIOS[name]


IN_CONTAINERS: dict[str, Expectation] = {
    "node-loss": Expectation(leader_changes=None),
    "db-failover-under-http-load": Expectation(
        leader_changes=None, instances_stay_in_rotation=True, no_database_requests_ok=True
    ),
}
"""What a drill promises when the stack runs on a container engine instead, and why it
differs. node-loss: the engine starts the killed node's tasks again within seconds (2.5 s
measured), inside the leader lock's TTL, so Patroni on the old leader may take its lock back
(no failover, no leader-change alert) or another node may win; both are right, and the
promise is the write gap and no lost acknowledged write (docs/deploy-swarm.md#drills). The
same for db-failover-under-http-load, which loses the primary's node the same way."""


RUN_ON_CONTAINERS: tuple[str, ...] = (
    "kill-postmaster",
    "crash-primary",
    "node-loss",
    "freeze-primary",
    "partition-primary",
    "sync-replica-loss",
    "switchover",
    "rolling-restart",
    "db-failover-under-http-load",
)
"""The drills whose faults hastack can cause on a container engine, each run there with
the same checker (docs/deploy.md#drills-on-swarm). The others stop, start or signal
supervisord's programs (an etcd member, Patroni alone, PgBouncer, Redis, HAProxy, one app
instance), which the engine's tasks replace, and have no container driver yet; kill-patroni
cannot mean the same fault there at all: Patroni is its container's main process, and
PostgreSQL ends with it."""


RUN_IN_LAB: tuple[str, ...] = (
    *(s.name for s in HOST_SCENARIOS),
    "kill-postmaster",
    "crash-primary",
    "node-loss",
    "sync-replica-loss",
    "switchover",
)
"""The drills run on the lab's hosts: the host faults, and those that act on one node's
processes or on Patroni (the same PID space). The others cut networks with iptables in
this machine's namespace, or need more than one host's programs on one address."""


def available(scenario: Scenario, venue: Venue) -> bool:
    if venue == "containers":
        return scenario.name in RUN_ON_CONTAINERS
    if venue == "lab":
        return scenario.name in RUN_IN_LAB
    return scenario.name not in HOST_DRILLS


HOST_DRILLS = frozenset(s.name for s in HOST_SCENARIOS)
"""Faults of a whole host: they need the lab."""


def for_stack(scenario: Scenario, venue: Venue) -> Scenario:
    """The scenario with its promise for where the stack runs; a drill that cannot run
    there is refused before anything is touched."""
    if available(scenario, venue):
        if venue == "containers" and scenario.name in IN_CONTAINERS:
            return replace(scenario, expect=IN_CONTAINERS[scenario.name])
        return scenario
    if venue == "containers":
        raise HastackError(
            f"drill {scenario.name} does not run on a container engine yet: it drives "
            "supervisord's programs, which the engine's tasks replace",
            "on Swarm and Compose hastack drills " + ", ".join(RUN_ON_CONTAINERS),
        )
    if venue == "lab":
        raise HastackError(
            f"drill {scenario.name} does not run in the lab (the spec's hosts as namespaces)",
            "in the lab hastack drills " + ", ".join(RUN_IN_LAB),
        )
    raise HastackError(
        f"drill {scenario.name} faults a whole host: it runs in the lab only",
        "simulate the hosts of a `target: systemd` spec with `hastack lab up`, then "
        "`hastack up` (docs/deploy-systemd.md#the-lab)",
    )
