"""Ops on a FakeStack: scripted snapshots, a fake clock, a process table instead of
supervisord. What an op decides (refusals, orders, waits) is tested here without processes;
what it does to real components is the integration tests' job."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hastack.errors import HastackError
from hastack.ops.app import restart_app
from hastack.ops.cluster import switchover
from hastack.ops.lifecycle import restart, wait_healthy
from hastack.ops.status import stack_status
from hastack.runtime import heartbeat
from hastack.runtime.fakes import FakeClock, FakeStack
from hastack.runtime.snapshot import StackSnapshot, WatcherView
from hastack.spec import StackSpec, derive_plan
from tests.unit.factories import healthy_snapshot

PLAN = derive_plan(StackSpec())


def with_roles(snap: StackSnapshot, **roles: tuple[str, str]) -> StackSnapshot:
    """Members' (role, state) by node name."""
    members = tuple(
        replace(m, role=roles[m.name][0], state=roles[m.name][1]) if m.name in roles else m
        for m in snap.members
    )
    return replace(snap, members=members)


def test_wait_healthy_polls_until_healthy_on_the_stacks_clock() -> None:
    degraded = with_roles(healthy_snapshot(), pg3=("replica", "starting"))
    stack = FakeStack(PLAN, [degraded, degraded, healthy_snapshot()])
    assessment = wait_healthy(stack, timeout_s=30)
    assert assessment.healthy
    assert stack.snapshots_taken == 3
    assert stack.fake_clock.sleeps == [0.5, 0.5]  # no real time spent


def test_wait_healthy_returns_the_last_assessment_at_its_deadline() -> None:
    degraded = with_roles(healthy_snapshot(), pg3=("replica", "stopped"))
    stack = FakeStack(PLAN, [degraded])
    assessment = wait_healthy(stack, timeout_s=5)
    assert assessment.health == "degraded"
    assert any("pg3" in p for p in assessment.problems)
    assert stack.fake_clock.now >= 1000 + 5


@pytest.mark.parametrize(
    ("snapshot", "to", "what", "hint"),
    [
        pytest.param(
            with_roles(healthy_snapshot(leader_key=None), pg1=("replica", "stopped")),
            None,
            "the cluster has no leader",
            "hastack failover --to NODE",
            id="no-leader",
        ),
        pytest.param(healthy_snapshot(), "pg1", "pg1 is already the leader", "", id="to-leader"),
        pytest.param(
            with_roles(healthy_snapshot(), pg3=("replica", "starting")),
            "pg3",
            "pg3 is not a streaming replica",
            "hastack status",
            id="not-streaming",
        ),
        pytest.param(
            healthy_snapshot(),
            "pg3",
            "in synchronous mode only the synchronous standby (pg2) has every acknowledged "
            "commit; switch over to it, not to pg3",
            "hastack switchover --to pg2",
            id="async-replica-in-sync-mode",
        ),
    ],
)
def test_switchover_refuses_what_could_lose_writes(
    snapshot: StackSnapshot, to: str | None, what: str, hint: str
) -> None:
    stack = FakeStack(PLAN, [snapshot])
    with pytest.raises(HastackError) as caught:
        switchover(stack, to)
    assert caught.value.what == what
    assert caught.value.hint == hint
    assert stack.supervisor.calls == []  # type: ignore[attr-defined]


def test_restart_of_a_node_stops_patroni_first_and_starts_it_last() -> None:
    stack = FakeStack(PLAN, [healthy_snapshot()], leader="pg1")
    result = restart(stack, "pg3")
    assert result.assessment.healthy
    assert stack.supervisor.calls == [  # type: ignore[attr-defined]
        ("stop", "pg3:pg3-patroni"),
        ("stop", "pg3:pg3-etcd"),
        ("start", "pg3:pg3-etcd"),
        ("stop", "pg3:pg3-pgbackrest"),
        ("start", "pg3:pg3-pgbackrest"),
        ("start", "pg3:pg3-patroni"),
    ]


def test_restart_of_every_patroni_takes_the_leader_last() -> None:
    stack = FakeStack(PLAN, [healthy_snapshot()], leader="pg2")
    restart(stack, "patroni")
    stops = [name for verb, name in stack.supervisor.calls if verb == "stop"]  # type: ignore[attr-defined]
    assert stops[-1] == "pg2:pg2-patroni"


def test_restart_names_the_targets_it_knows() -> None:
    stack = FakeStack(PLAN, [healthy_snapshot()])
    with pytest.raises(HastackError) as caught:
        restart(stack, "pg7")
    assert "unknown target 'pg7'" in caught.value.what
    assert "pg2:etcd" in caught.value.what


def test_restart_of_a_stopped_stack_says_to_bring_it_up() -> None:
    stack = FakeStack(PLAN, [healthy_snapshot()])
    stack.supervisor.running = False  # type: ignore[attr-defined]
    with pytest.raises(HastackError) as caught:
        restart(stack, "haproxy")
    assert caught.value.hint == "hastack up"


def test_app_restart_without_instances_says_how_to_add_them() -> None:
    plan = derive_plan(StackSpec.model_validate({"app": {"instances": 0}}))
    with pytest.raises(HastackError) as caught:
        restart_app(FakeStack(plan, []))
    assert caught.value.hint == "hastack scale app=2"


def test_status_reports_a_watcher_that_stopped_polling() -> None:
    clock = FakeClock()
    beat = heartbeat.Heartbeat(
        pid=1,
        started_at=clock.wall() - 120,
        last_poll_at=clock.wall() - 45,
        polls=100,
        failed_polls=30,
        last_error="EtcdUnavailable: no etcd member answered",
    )
    snap = replace(healthy_snapshot(), watcher=WatcherView(beat, (), clock.wall()))
    # Backups are read through pgBackRest itself (the integration tests): off here.
    plan = derive_plan(StackSpec.model_validate({"backup": {"enabled": False}}))
    status = stack_status(FakeStack(plan, [snap], clock=clock))
    assert status.health == "degraded"
    assert status.exit_code == 1
    [problem] = status.assessment.problems
    assert "no poll completed for 45 s" in problem
    assert "EtcdUnavailable" in problem
    assert status.as_dict()["watcher"]["failed_polls"] == 30
