"""The fencing watcher's rules, table-driven: when it must act and, mostly, when it must not."""

from __future__ import annotations

from dataclasses import replace

from hastack.render.fencer import render_fencer_config
from hastack.runtime.fencing import (
    FenceConfig,
    Observation,
    WatchState,
    after_fence,
    after_release,
    decide,
    readmit,
)
from hastack.spec import StackSpec, derive_plan

DETECT = 1.0


def run(observations: list[Observation], state: WatchState | None = None) -> list[str]:
    state = state or WatchState()
    actions = []
    for obs in observations:
        decision, state = decide(state, obs, DETECT)
        actions.append(decision.action)
    return actions


def down(t: float, leader: str = "pg1", **kw: bool) -> Observation:
    return Observation(t=t, leader=leader, etcd_ok=True, rest_ok=False, pg_ok=False, **kw)


def test_fences_only_after_both_probes_failed_for_detect_s() -> None:
    assert run([down(0.0), down(0.25), down(0.5), down(0.75), down(1.0)]) == [
        "suspect",
        "suspect",
        "suspect",
        "suspect",
        "fence",
    ]


def test_patroni_only_crash_is_never_fenced() -> None:
    obs = [
        Observation(t=t / 4, leader="pg1", etcd_ok=True, rest_ok=False, pg_ok=True)
        for t in range(20)
    ]
    assert set(run(obs)) == {"none"}


def test_postgres_only_crash_is_never_fenced() -> None:
    obs = [
        Observation(t=t / 4, leader="pg1", etcd_ok=True, rest_ok=True, pg_ok=False)
        for t in range(20)
    ]
    assert set(run(obs)) == {"none"}


def test_one_good_probe_resets_the_clock() -> None:
    ok = Observation(t=0.8, leader="pg1", etcd_ok=True, rest_ok=False, pg_ok=True)
    assert run([down(0.0), down(0.5), ok, down(1.0), down(1.5), down(2.0)]) == [
        "suspect",
        "suspect",
        "none",
        "suspect",
        "suspect",
        "fence",
    ]


def test_a_new_leader_resets_the_clock() -> None:
    assert run([down(0.0, "pg1"), down(0.9, "pg2"), down(1.5, "pg2"), down(2.0, "pg2")]) == [
        "suspect",
        "suspect",
        "suspect",
        "fence",
    ]


def test_no_action_without_etcd_without_leader_when_paused_or_held() -> None:
    blind = Observation(t=5.0, leader=None, etcd_ok=False)
    leaderless = Observation(t=5.0, leader=None, etcd_ok=True)
    assert run([down(0.0), blind, down(5.5), down(5.75)]) == [
        "suspect",
        "none",
        "suspect",
        "suspect",
    ]
    assert run([down(0.0), leaderless, down(6.0)]) == ["suspect", "none", "suspect"]
    paused = [down(t / 4, paused=True) for t in range(12)]
    held = [down(t / 4, held=True) for t in range(12)]
    assert set(run(paused)) == {"none"}
    assert set(run(held)) == {"none"}


def test_release_follows_a_confirmed_fence_and_only_then() -> None:
    state = WatchState()
    decision, state = decide(state, down(0.0), DETECT)
    decision, state = decide(state, down(1.2), DETECT)
    assert decision.action == "fence"
    unconfirmed = after_fence(state, "pg1", confirmed=False)
    assert decide(unconfirmed, down(1.5), DETECT)[0].action == "suspect"
    confirmed = after_fence(state, "pg1", confirmed=True)
    decision, state = decide(confirmed, down(1.5), DETECT)
    assert decision.action == "release" and decision.node == "pg1"
    assert "releasing" in decision.sentence
    state = after_release(state, "pg1", released=True)
    assert state.fenced == frozenset()


def test_a_fenced_node_that_lost_the_key_is_forgotten() -> None:
    state = after_fence(WatchState(leader="pg1"), "pg1", confirmed=True)
    decision, state = decide(
        state, Observation(t=2.0, leader="pg2", etcd_ok=True, rest_ok=True, pg_ok=True), DETECT
    )
    assert decision.action == "none" and state.fenced == frozenset()


def test_every_decision_is_one_sentence_naming_the_node() -> None:
    decision, _ = decide(WatchState(), down(0.0, "pg3"), DETECT)
    assert "pg3" in decision.sentence and decision.sentence.count("\n") == 0


def test_config_round_trips_from_the_renderer() -> None:
    plan = derive_plan(StackSpec())
    config = FenceConfig.from_json(render_fencer_config(plan))
    assert config.leader_key == "/hastack/demo/leader"
    assert [n.name for n in config.nodes] == ["pg1", "pg2", "pg3"]
    assert config.etcd_urls_without("pg2") == ("http://127.0.10.1:2379", "http://127.0.10.3:2379")
    assert config.detect_s == 1.0 and config.poll_interval_s == 0.25


def test_silence_is_timed_through_an_etcd_election_but_acted_on_only_after_it() -> None:
    blind_down = Observation(t=0.5, leader=None, etcd_ok=False, rest_ok=False, pg_ok=False)
    state = WatchState(leader="pg1")
    decision, state = decide(state, down(0.0), DETECT)
    assert decision.action == "suspect"
    decision, state = decide(state, blind_down, DETECT)
    assert decision.action == "suspect" and "etcd cannot be read" in decision.sentence
    decision, state = decide(state, replace(blind_down, t=1.2), DETECT)
    assert decision.action == "suspect"  # silent long enough, but no confirmed leader yet
    decision, state = decide(state, down(1.3), DETECT)
    assert decision.action == "fence"


def alive(t: float, role: str, dcs_age_s: float, pg_state: str = "running") -> Observation:
    up = role == "primary" and pg_state == "running"
    return Observation(
        t=t,
        leader="pg1",
        etcd_ok=True,
        rest_ok=True,
        pg_ok=up,
        role=role,
        pg_state=pg_state,
        dcs_age_s=dcs_age_s,
    )


def test_a_demoted_leader_with_a_stale_key_is_released_without_fencing() -> None:
    state = WatchState()
    actions = []
    for t in [0.0, 2.0, 4.0, 6.0]:
        decision, state = decide(state, alive(t, "replica", dcs_age_s=t), DETECT, dcs_silence_s=5.0)
        actions.append(decision.action)
    assert actions == ["none", "none", "none", "release"]
    assert "out of touch with etcd for 6 s" in decision.sentence
    assert "no longer serves as primary (Patroni reports replica, running)" in decision.sentence


def test_a_renewed_key_is_never_released() -> None:
    state = WatchState()
    for t in [0.0, 2.0, 4.0, 6.0, 8.0]:
        decision, state = decide(
            state, alive(t, "replica", dcs_age_s=1.0), DETECT, dcs_silence_s=5.0
        )
        assert decision.action == "none"


def test_a_primary_holding_a_stale_key_is_left_alone() -> None:
    """A leader cut off from etcd still says primary until it demotes itself: wait for it."""
    state = WatchState()
    for t in [0.0, 3.0, 6.0, 9.0]:
        decision, state = decide(state, alive(t, "primary", dcs_age_s=t), DETECT, dcs_silence_s=5.0)
        assert decision.action == "none"


def test_a_leader_that_demoted_itself_offline_is_released() -> None:
    """Cut off from the DCS, Patroni stops PostgreSQL but still reports role primary."""
    state = WatchState()
    actions = []
    for t in [0.0, 3.0, 6.0]:
        obs = alive(t, "primary", dcs_age_s=t, pg_state="stopping")
        decision, state = decide(state, obs, DETECT, dcs_silence_s=5.0)
        actions.append(decision.action)
    assert actions == ["none", "none", "release"]


def test_a_crashed_postgres_whose_leader_renews_the_key_is_left_to_patroni() -> None:
    state = WatchState()
    for t in [0.0, 2.0, 4.0, 6.0, 8.0]:
        obs = alive(t, "primary", dcs_age_s=1.0, pg_state="starting")
        decision, state = decide(state, obs, DETECT, dcs_silence_s=5.0)
        assert decision.action == "none"


def test_in_synchronous_mode_a_running_leader_with_a_stale_key_is_released() -> None:
    state = WatchState()
    actions = []
    for t in [0.0, 4.0, 7.0]:
        obs = alive(t, "primary", dcs_age_s=t)
        decision, state = decide(state, obs, DETECT, dcs_silence_s=7.0, release_running=True)
        actions.append(decision.action)
    assert actions == ["none", "none", "release"]
    assert "still runs as primary" in decision.sentence


def test_nodes_return_to_haproxy_only_once_they_run_as_replicas() -> None:
    routed = frozenset({"pg1", "pg2", "pg3"})
    roles = {
        "pg1": ("replica", "running"),  # rejoined: back
        "pg2": ("primary", "stopping"),  # the isolated old leader, still going down: not yet
        "pg3": ("primary", "running"),  # a node claiming primary without the key: never
    }
    assert readmit(routed, roles, leader="pg4") == ["pg1"]
    assert readmit(frozenset({"pg3"}), roles, leader="pg3") == ["pg3"]  # elected again
