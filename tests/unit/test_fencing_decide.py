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
