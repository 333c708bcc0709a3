"""Decide how healthy a stack is from one snapshot. Pure: table-tested without processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hastack.runtime import heartbeat
from hastack.runtime.snapshot import TARGETS_DOWN_SCRAPES, StackSnapshot
from hastack.spec.names import RO_BACKEND, RW_BACKEND

Health = Literal["healthy", "degraded", "down"]

EXIT_CODES: dict[Health, int] = {"healthy": 0, "degraded": 1, "down": 2}


@dataclass(frozen=True)
class Assessment:
    health: Health
    problems: tuple[str, ...]
    """One sentence per problem, naming the component and node."""

    @property
    def healthy(self) -> bool:
        return self.health == "healthy"


@dataclass(frozen=True)
class DataTier:
    """The part of the assessment `up` waits on, step by step."""

    etcd_quorum: bool
    leader: str | None
    sync_standby: str | None
    streaming: tuple[str, ...]
    """Replicas (including the sync standby) that stream from the leader."""
    standby: bool = False
    """The leader is a standby leader: this cluster replicates from another region's."""


STANDBY_LEADER_UP = frozenset({"running", "streaming", "in archive recovery"})
"""A standby leader's states while its PostgreSQL runs: streaming from the primary, or
(between attempts, when streaming broke) replaying what its restore_command fetches."""


def data_tier(snap: StackSnapshot) -> DataTier:
    healthy_etcd = sum(1 for m in snap.etcd if m.healthy)
    quorum = healthy_etcd > len(snap.etcd) // 2
    leader, standby = None, False
    for m in snap.members:
        if m.name != snap.leader_key:
            continue
        if m.role == "leader" and m.state == "running":
            leader = m.name
        elif m.role == "standby_leader" and m.state in STANDBY_LEADER_UP:
            leader, standby = m.name, True
    sync = next(
        (m.name for m in snap.members if m.role == "sync_standby" and m.state == "streaming"),
        None,
    )
    streaming = tuple(
        m.name
        for m in snap.members
        if m.role in ("replica", "sync_standby") and m.state == "streaming"
    )
    return DataTier(
        etcd_quorum=quorum, leader=leader, sync_standby=sync, streaming=streaming, standby=standby
    )


def members_seen(snap: StackSnapshot) -> str:
    return ", ".join(f"{m.name}={m.role}/{m.state}" for m in snap.members)


def etcd_quorum_reached(snap: StackSnapshot) -> tuple[bool | None, str]:
    """For a wait: True once a majority of etcd members is healthy, else who is."""
    if data_tier(snap).etcd_quorum:
        return True, ""
    healthy = [m.name for m in snap.etcd if m.healthy]
    return None, f"healthy members: {healthy or 'none'}"


def replicas_streaming(
    snap: StackSnapshot, replicas: int, synchronous_mode: bool
) -> tuple[bool | None, str]:
    """For a wait: True once a leader runs with `replicas` streaming from it (one of them
    its synchronous standby in synchronous mode), else what each member is."""
    tier = data_tier(snap)
    sync_ok = tier.sync_standby is not None or not synchronous_mode
    done = tier.leader is not None and len(tier.streaming) == replicas and sync_ok
    return (True if done else None), members_seen(snap)


def assess(snap: StackSnapshot) -> Assessment:
    spec = snap.plan.spec
    if not snap.supervisor_running and not snap.orphans:
        return Assessment("down", ("supervisord is not running: the stack is down",))
    tier = data_tier(snap)
    problems: list[str] = _supervision(snap)
    fatal = False

    for prog in snap.programs:
        if tier.standby and prog.state == "STOPPED" and _idle_in_a_standby(prog.name):
            continue
        if not prog.running:
            problems.append(f"{prog.process_name}: {prog.state.lower()} ({prog.description})")
    for e in snap.etcd:
        if not e.healthy:
            problems.append(f"etcd {e.name}: unhealthy ({e.error or 'no leader'})")
    if not tier.etcd_quorum:
        problems.append("etcd: no quorum (Patroni cannot change leaders)")

    if tier.leader is None:
        fatal = True
        problems.append(
            "postgres: no running leader"
            + (f" (leader key: {snap.leader_key})" if snap.leader_key else " (no leader key)")
        )
    replicas = len(snap.members) - 1
    if (
        spec.postgres.synchronous_mode
        and replicas >= 1
        and tier.sync_standby is None
        and not tier.standby
    ):
        problems.append("postgres: no synchronous standby streaming (RPO is not 0)")
    for m in snap.members:
        if m.name != tier.leader and m.name not in tier.streaming:
            problems.append(f"postgres {m.name}: {m.role} is {m.state}, not streaming")

    fatal |= _assess_haproxy(snap, tier, problems)
    if not tier.standby:  # a standby cluster runs no app instance until it is promoted
        fatal |= _assess_app(snap, problems)
    if not snap.pgbouncer.ok:
        fatal = True
        problems.append(f"pgbouncer: {snap.pgbouncer.error}")
    if not snap.redis.ok:
        problems.append(f"redis: {snap.redis.error}")
    if snap.failsafe:
        problems.append(
            f"patroni: failsafe mode active on {', '.join(snap.failsafe)} (the leader ran "
            "without etcd within the last ttl): a failover now would wait until it expires"
        )
    if snap.paused:
        problems.append(
            "patroni: maintenance mode (paused): no automatic failover; `hastack resume`"
        )
    for leftover in snap.leftovers:
        problems.append(f"left by an interrupted drill: {leftover}; run `hastack drill cleanup`")
    problems += _watcher(snap)
    problems += _monitoring(snap, tier.standby)

    if fatal:
        return Assessment("down", tuple(problems))
    return Assessment("degraded" if problems else "healthy", tuple(problems))


def _monitoring(snap: StackSnapshot, standby: bool) -> list[str]:
    """Prometheus' view: every target it scrapes must answer (a dead exporter is a blind
    spot, not an outage: degraded). A standby cluster runs no app instance until it is
    promoted: their targets are down by design there."""
    probe = snap.monitoring
    if probe is None:
        return []
    if probe.error:
        return [f"monitoring: {probe.error}"]
    return [
        f"monitoring: Prometheus' last {TARGETS_DOWN_SCRAPES} scrapes of {target} failed"
        for target in probe.detail.get("down", [])
        if not (standby and target.split(" ", 1)[0] == "app")
    ]


def _idle_in_a_standby(program: str) -> bool:
    """A standby cluster runs no app instance (app1..) and no backup scheduler until it is
    promoted: nothing could write, and pgBackRest backs up only a primary."""
    return program == "backup-scheduler" or (program.startswith("app") and program[3:].isdigit())


def _assess_haproxy(snap: StackSnapshot, tier: DataTier, problems: list[str]) -> bool:
    """Append HAProxy problems; True when no write path exists through it (for a standby
    cluster: when no read path does)."""
    if snap.haproxy_error:
        problems.append(f"haproxy: {snap.haproxy_error}")
        return True
    leader = tier.leader
    rw_up = [s.server for s in snap.haproxy if s.backend == RW_BACKEND and s.up]
    ro_up = [s.server for s in snap.haproxy if s.backend == RO_BACKEND and s.up]
    if tier.standby:
        if rw_up:
            problems.append(f"haproxy: read-write pool routes to {rw_up} in a standby cluster")
        # The standby leader answers /replica?lag= with 503 (no primary to lag behind):
        # reads go to its cascading replicas.
        if len(ro_up) < len(snap.members) - 1:
            problems.append(f"haproxy: {len(ro_up)} of {len(snap.members) - 1} replicas up")
        return not ro_up
    if not rw_up:
        problems.append("haproxy: no server up in the read-write pool")
        return True
    if leader is not None and rw_up != [leader]:
        problems.append(f"haproxy: read-write pool routes to {rw_up}, the leader is {leader}")
    expected_ro = len(snap.members) - 1
    if len(ro_up) < expected_ro:
        problems.append(f"haproxy: {len(ro_up)} of {expected_ro} replicas up in the read-only pool")
    return False


def _assess_app(snap: StackSnapshot, problems: list[str]) -> bool:
    """App instances: each ready and in rotation; True when none serves at all."""
    if not snap.app:
        return False
    for inst in snap.app:
        if not inst.ready:
            problems.append(f"app {inst.name}: not ready ({inst.url})")
        elif not inst.in_rotation:
            problems.append(f"app {inst.name}: {inst.haproxy or 'unknown'} in HAProxy")
    if not any(i.ready and i.in_rotation for i in snap.app):
        problems.append("app: no instance in rotation: the web tier is down")
        return True
    return False


def _supervision(snap: StackSnapshot) -> list[str]:
    """A dead supervisord, or processes running outside it: nothing restarts them."""
    if not snap.orphans:
        return []
    listed = ", ".join(o.describe() for o in snap.orphans[:6])
    more = f" and {len(snap.orphans) - 6} more" if len(snap.orphans) > 6 else ""
    if not snap.supervisor_running:
        return [
            f"supervisord is not running, but {len(snap.orphans)} of the stack's processes "
            f"still run unsupervised (nothing restarts them): {listed}{more}; `hastack up` "
            "takes them over without stopping the cluster"
        ]
    return [
        f"{len(snap.orphans)} processes of the stack run outside supervisord: {listed}{more}; "
        "`hastack up` takes them over"
    ]


def _watcher(snap: StackSnapshot) -> list[str]:
    view = snap.watcher
    if view is None:
        return []
    fencer = next((p for p in snap.programs if p.group == "fencer"), None)
    return heartbeat.watcher_problems(
        view.heartbeat,
        view.now,
        fencer.state if fencer else None,
        float(fencer.uptime_s) if fencer else 0.0,
    )
