"""How healthy is the stack: table-driven over snapshots, no processes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hastack.runtime.health import assess, data_tier
from hastack.runtime.snapshot import (
    AppInstanceState,
    ServiceProbe,
    StackSnapshot,
    targets_down_query,
)
from tests.unit.factories import healthy_snapshot


def with_member(snap: StackSnapshot, name: str, **changes: object) -> StackSnapshot:
    members = tuple(
        replace(m, **changes) if m.name == name else m  # type: ignore[arg-type]
        for m in snap.members
    )
    return replace(snap, members=members)


def with_server(snap: StackSnapshot, backend: str, server: str, up: bool) -> StackSnapshot:
    servers = tuple(
        replace(s, up=up, status="UP" if up else "DOWN")
        if (s.backend, s.server) == (backend, server)
        else s
        for s in snap.haproxy
    )
    return replace(snap, haproxy=servers)


def test_healthy() -> None:
    result = assess(healthy_snapshot())
    assert result.health == "healthy"
    assert result.problems == ()


BASE = healthy_snapshot()

CASES = [
    (
        "replica down",
        with_server(
            with_member(BASE, "pg3", role="replica", state="stopped"), "pg_replicas", "pg3", False
        ),
        "degraded",
        ["postgres pg3: replica is stopped, not streaming", "1 of 2 replicas up"],
    ),
    (
        "no sync standby",
        with_member(BASE, "pg2", role="replica"),
        "degraded",
        ["no synchronous standby streaming"],
    ),
    (
        "no leader",
        replace(with_member(BASE, "pg1", role="replica", state="stopped"), leader_key=None),
        "down",
        ["postgres: no running leader (no leader key)"],
    ),
    (
        "leader key names another node than the running leader",
        replace(BASE, leader_key="pg2"),
        "down",
        ["no running leader (leader key: pg2)"],
    ),
    (
        "haproxy unreachable",
        replace(BASE, haproxy=(), haproxy_error="HAProxy admin socket: refused"),
        "down",
        ["haproxy: HAProxy admin socket: refused"],
    ),
    (
        "haproxy routes writes nowhere",
        with_server(BASE, "pg_primary", "pg1", False),
        "down",
        ["no server up in the read-write pool"],
    ),
    (
        "haproxy routes writes to the wrong node",
        with_server(with_server(BASE, "pg_primary", "pg1", False), "pg_primary", "pg2", True),
        "degraded",
        ["read-write pool routes to ['pg2'], the leader is pg1"],
    ),
    (
        "pgbouncer down",
        replace(BASE, pgbouncer=ServiceProbe(ok=False, error="refused")),
        "down",
        ["pgbouncer: refused"],
    ),
    (
        "redis down",
        replace(BASE, redis=ServiceProbe(ok=False, error="refused")),
        "degraded",
        ["redis: refused"],
    ),
    (
        "a drill left a network cut behind",
        replace(BASE, leftovers=("iptables chain HS-demo (network cut)",)),
        "degraded",
        ["left by an interrupted drill: iptables chain HS-demo", "hastack drill cleanup"],
    ),
    (
        "an app instance not ready",
        replace(BASE, app=(replace(BASE.app[0], ready=False, haproxy="DOWN"), BASE.app[1])),
        "degraded",
        ["app app1: not ready"],
    ),
    (
        "an app instance drained",
        replace(BASE, app=(BASE.app[0], replace(BASE.app[1], haproxy="DRAIN"))),
        "degraded",
        ["app app2: DRAIN in HAProxy"],
    ),
    (
        "no app instance in rotation",
        replace(BASE, app=tuple(replace(a, haproxy="MAINT") for a in BASE.app)),
        "down",
        ["app: no instance in rotation"],
    ),
    (
        "supervisord not running",
        replace(BASE, supervisor_running=False),
        "down",
        ["supervisord is not running"],
    ),
    (
        "a program restarting",
        replace(
            BASE,
            programs=(
                replace(BASE.programs[3], state="BACKOFF", description="Exited too quickly"),
                *BASE.programs[4:],
            ),
        ),
        "degraded",
        ["pg1:pg1-patroni: backoff (Exited too quickly)"],
    ),
]


@pytest.mark.parametrize(("label", "snap", "health", "problems"), CASES, ids=[c[0] for c in CASES])
def test_assess(label: str, snap: StackSnapshot, health: str, problems: list[str]) -> None:
    result = assess(snap)
    assert result.health == health, result.problems
    for expected in problems:
        assert any(expected in p for p in result.problems), (expected, result.problems)


def test_etcd_quorum_needs_a_majority() -> None:
    etcd = BASE.etcd
    one_down = replace(BASE, etcd=(replace(etcd[0], healthy=False), *etcd[1:]))
    two_down = replace(
        BASE, etcd=(replace(etcd[0], healthy=False), replace(etcd[1], healthy=False), etcd[2])
    )
    assert data_tier(one_down).etcd_quorum
    assert assess(one_down).health == "degraded"
    assert not data_tier(two_down).etcd_quorum
    assert any("no quorum" in p for p in assess(two_down).problems)


def test_data_tier_roles() -> None:
    tier = data_tier(BASE)
    assert (tier.leader, tier.sync_standby, tier.streaming) == ("pg1", "pg2", ("pg2", "pg3"))


def test_app_instance_in_rotation_only_when_up() -> None:
    assert AppInstanceState("app1", "http://x", True, "UP 1/2").in_rotation
    assert not AppInstanceState("app1", "http://x", True, "DRAIN").in_rotation
    assert not AppInstanceState("app1", "http://x", True, None).in_rotation


def test_failsafe_mode_lingering_after_an_etcd_outage_is_degraded() -> None:
    """For ttl after the leader last ran without etcd, the others still follow it even without
    a leader key: a failover would wait. Not yet back to full protection."""
    result = assess(healthy_snapshot(failsafe=("pg2", "pg3")))
    assert result.health == "degraded"
    assert any("failsafe mode active on pg2, pg3" in p for p in result.problems)


def standby_snapshot() -> StackSnapshot:
    """A healthy standby cluster: pg1 the standby leader, no synchronous standby, the
    read-write pool empty (Patroni answers /primary with 503), the app and the backup
    scheduler stopped until it is promoted."""
    snap = with_member(healthy_snapshot(), "pg1", role="standby_leader", state="streaming")
    snap = with_member(snap, "pg2", role="replica")
    snap = with_server(snap, "pg_primary", "pg1", False)
    idle = tuple(
        replace(p, state="STOPPED")
        if p.name == "backup-scheduler" or (p.name.startswith("app") and p.name[3:].isdigit())
        else p
        for p in snap.programs
    )
    return replace(snap, programs=idle)


def test_a_standby_cluster_is_healthy_without_a_primary_or_sync_standby() -> None:
    snap = standby_snapshot()
    tier = data_tier(snap)
    assert (tier.leader, tier.standby, tier.streaming) == ("pg1", True, ("pg2", "pg3"))
    assert assess(snap).healthy, assess(snap).problems


def test_a_standby_cluster_still_needs_its_replicas_and_no_write_path() -> None:
    snap = with_server(standby_snapshot(), "pg_replicas", "pg3", False)
    assert assess(snap).problems == ("haproxy: 1 of 2 replicas up",)
    snap = with_server(standby_snapshot(), "pg_primary", "pg2", True)
    [problem] = assess(snap).problems
    assert "read-write pool routes to ['pg2'] in a standby cluster" in problem
    # Only a standby leader excuses a stopped scheduler: on a primary it is a problem.
    promoted = with_member(standby_snapshot(), "pg1", role="leader", state="running")
    assert any("backup-scheduler" in p for p in assess(promoted).problems)


def test_a_standby_leader_between_streaming_attempts_is_still_the_leader() -> None:
    snap = with_member(standby_snapshot(), "pg1", state="in archive recovery")
    assert data_tier(snap).leader == "pg1"


def test_a_standby_cluster_with_its_app_instances_stopped_is_not_down() -> None:
    snap = replace(
        standby_snapshot(),
        app=tuple(AppInstanceState(a.name, a.url, False, "DOWN") for a in standby_snapshot().app),
    )
    assert assess(snap).healthy, assess(snap).problems


def test_a_target_prometheus_cannot_scrape_makes_the_stack_degraded() -> None:
    down = ServiceProbe(ok=False, detail={"down": ["postgres pg2", "redis 127.0.10.106:9121"]})
    result = assess(healthy_snapshot(monitoring=down))
    assert result.health == "degraded"
    assert "monitoring: Prometheus' last 3 scrapes of postgres pg2 failed" in result.problems
    unreachable = ServiceProbe(ok=False, error="Prometheus does not answer: ConnectError")
    assert assess(healthy_snapshot(monitoring=unreachable)).problems == (
        "monitoring: Prometheus does not answer: ConnectError",
    )
    every_target_up = ServiceProbe(ok=True, detail={"down": []})
    assert assess(healthy_snapshot(monitoring=every_target_up)).health == "healthy"
    assert targets_down_query(5) == (
        "(max_over_time(up[30s]) == 0 and count_over_time(up[30s]) >= 3) "
        'and on () (time() - process_start_time_seconds{job="prometheus"} > 30)'
    )
    assert "up[60s]" in targets_down_query(15)


def test_a_standby_clusters_idle_app_instances_are_not_a_monitoring_problem() -> None:
    """They run only once the standby is promoted: Prometheus' failing scrapes of them say
    nothing wrong; any other target still does."""
    down = ServiceProbe(ok=False, detail={"down": ["app app1", "app app2", "postgres dr2"]})
    snap = replace(standby_snapshot(), monitoring=down)
    problems = [p for p in assess(snap).problems if p.startswith("monitoring:")]
    assert problems == ["monitoring: Prometheus' last 3 scrapes of postgres dr2 failed"]
