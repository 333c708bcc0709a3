"""The watcher's replica repairs (pure): a replica that cannot start is rebuilt, once it has
failed for long enough, from a running leader, never while held, never in a loop."""

from __future__ import annotations

import json

from hastack.runtime.replica_repair import (
    Member,
    RepairState,
    RepairTimings,
    members_from_dcs,
    plan_repairs,
)

T = RepairTimings(after_s=30.0, every_s=300.0)


def cluster(pg3_state: str, leader_state: str = "running") -> tuple[Member, ...]:
    return (
        Member("pg1", "primary", leader_state),
        Member("pg2", "replica", "streaming"),
        Member("pg3", "replica", pg3_state),
    )


def run(
    times: list[float], members: tuple[Member, ...], leader: str | None = "pg1", **kw: object
) -> list[tuple[float, str]]:
    state, done = RepairState(), []
    for t in times:
        repairs, state = plan_repairs(state, t, members, leader, timings=T, **kw)  # type: ignore[arg-type]
        done += [(t, r.node) for r in repairs]
    return done


def test_a_replica_that_keeps_failing_to_start_is_rebuilt_once_it_lasts() -> None:
    assert run([0.0, 10.0, 29.0, 30.0, 35.0], cluster("start failed")) == [(30.0, "pg3")]


def test_patronis_retries_in_between_do_not_end_the_spell() -> None:
    state, done = RepairState(), []
    for t, pg3 in [
        (0.0, "start failed"),
        (10.0, "starting"),
        (25.0, "start failed"),
        (31.0, "starting"),
        (40.0, "start failed"),
    ]:
        repairs, state = plan_repairs(state, t, cluster(pg3), "pg1", timings=T)
        done += [(t, r.node) for r in repairs]
    assert done == [(40.0, "pg3")]  # asked between two attempts, never during one


def test_not_again_within_every_s_but_again_after() -> None:
    times = [0.0, 30.0, 100.0, 329.0, 330.0]
    assert run(times, cluster("start failed")) == [(30.0, "pg3"), (330.0, "pg3")]


def test_a_recovery_in_between_restarts_the_count() -> None:
    state = RepairState()
    _, state = plan_repairs(state, 0.0, cluster("start failed"), "pg1", timings=T)
    _, state = plan_repairs(state, 20.0, cluster("streaming"), "pg1", timings=T)
    repairs, state = plan_repairs(state, 40.0, cluster("start failed"), "pg1", timings=T)
    assert repairs == []  # failing again only since t=40
    repairs, _ = plan_repairs(state, 70.0, cluster("start failed"), "pg1", timings=T)
    assert [r.node for r in repairs] == ["pg3"]


def test_never_without_a_running_leader_nor_the_leader_itself_nor_while_held() -> None:
    assert run([0.0, 60.0], cluster("start failed"), leader=None) == []
    assert run([0.0, 60.0], cluster("start failed", leader_state="starting")) == []
    leader_failing = (
        Member("pg1", "primary", "start failed"),
        Member("pg2", "replica", "streaming"),
    )
    assert run([0.0, 60.0], leader_failing, leader="pg1") == []
    assert run([0.0, 60.0], cluster("start failed"), blocked=frozenset({"pg3"})) == []
    # slow starts and running replicas are left alone
    assert run([0.0, 60.0], cluster("starting")) == []
    assert run([0.0, 60.0], cluster("creating replica")) == []


def test_members_are_read_from_patronis_keys() -> None:
    values = {
        "/hastack/demo/members/pg1": json.dumps({"role": "primary", "state": "running"}),
        "/hastack/demo/members/pg3": json.dumps({"role": "replica", "state": "start failed"}),
        "/hastack/demo/members/bad": "{not json",
    }
    assert members_from_dcs(values) == (
        Member("pg1", "primary", "running"),
        Member("pg3", "replica", "start failed"),
    )
