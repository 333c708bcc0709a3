"""The fencing watcher's rules, table-driven: when it must act and, mostly, when it must not.

Every scenario is a list of observations fed through `decide` in order, as the watcher's poll
loop does; the default timings are the ones `derive_watcher` gives the default spec (detect 1 s,
stall 6 s, demoted 3 s, stale running 13 s, synchronous mode)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

import pytest

from hastack.render.fencer import render_watcher_config
from hastack.runtime.fencing import (
    Decision,
    Observation,
    WatcherConfig,
    WatchState,
    after_fence,
    after_release,
    decide,
    fence_scope,
    readmit,
)
from hastack.spec import StackSpec, derive_plan
from hastack.spec.plan import WatcherTimings, derive_watcher

TIMINGS = derive_watcher(StackSpec())
POLL_S = TIMINGS.poll_interval_s


def obs(t: float, leader: str | None = "pg1", **kw: object) -> Observation:
    """A poll of a healthy leader (etcd readable, lease fresh) unless `kw` says otherwise."""
    healthy = {"rest": "ok", "pg": "ok", "role": "primary", "pg_state": "running"}
    fields: dict[str, Any] = {**healthy, "lease_age_s": 1.0, **kw}
    return Observation(t=t, leader=leader, etcd_ok=True, **fields)


def dead(t: float, leader: str = "pg1", **kw: object) -> Observation:
    """Nothing listens on the leader: both probes refused, /patroni silent."""
    return obs(t, leader, rest="refused", pg="refused", role=None, pg_state=None, **kw)


def silent(t: float, lease_age_s: float | None, leader: str = "pg1") -> Observation:
    """Both probes time out: frozen, cut off, or only slow."""
    return obs(
        t, leader, rest="timeout", pg="timeout", role=None, pg_state=None, lease_age_s=lease_age_s
    )


def run(
    observations: list[Observation],
    timings: WatcherTimings = TIMINGS,
    state: WatchState | None = None,
) -> list[Decision]:
    state = state or WatchState()
    decisions = []
    for o in observations:
        decision, state = decide(state, o, timings)
        decisions.append(decision)
    return decisions


def actions(observations: list[Observation], timings: WatcherTimings = TIMINGS) -> list[str]:
    return [d.action for d in run(observations, timings)]


def polls(seconds: float, start: float = 0.0) -> list[float]:
    """Poll times every poll interval from `start` for `seconds`, both ends included."""
    return [start + i * POLL_S for i in range(int(seconds / POLL_S) + 1)]


# --- dead node: both refuse ---------------------------------------------------------------


def test_a_dead_leader_is_suspected_until_detect_s_then_fenced() -> None:
    assert actions([dead(t) for t in polls(1.0)]) == ["suspect"] * 4 + ["fence"]


@pytest.mark.parametrize(
    "good",
    [
        pytest.param(obs(0.8, rest="refused"), id="postgres-answers"),
        pytest.param(obs(0.8, pg="refused", role="primary"), id="patroni-answers"),
    ],
)
def test_one_good_probe_restarts_the_dead_clock(good: Observation) -> None:
    # 1.5 s of refusals in all, but never 1 s in a row: a flap is not a dead node.
    assert actions([dead(0.0), dead(0.5), good, dead(1.0), dead(1.5), dead(2.0)]) == [
        "suspect",
        "suspect",
        "none",
        "suspect",
        "suspect",
        "fence",
    ]


def test_a_new_leader_restarts_the_dead_clock() -> None:
    # pg2 is silent for only 0.6 s at t=1.5: the time pg1 was silent is not pg2's.
    observed = [dead(0.0, "pg1"), dead(0.9, "pg2"), dead(1.5, "pg2"), dead(2.0, "pg2")]
    assert actions(observed) == ["suspect", "suspect", "suspect", "fence"]


def test_a_dead_leader_is_fenced_whatever_its_lease() -> None:
    # Refusals mean nothing listens: waiting for the lease only lengthens the outage.
    assert actions([dead(t, lease_age_s=0.0) for t in polls(1.0)])[-1] == "fence"


def unreachable(t: float, lease_age_s: float | None = 0.0, **kw: object) -> Observation:
    """No connection at all to the leader's host: no handshake, no route."""
    fields: dict[str, Any] = {"rest": "unreachable", "pg": "unreachable", **kw}
    return obs(t, role=None, pg_state=None, lease_age_s=lease_age_s, **fields)


def test_an_unreachable_host_is_fenced_after_detect_s_whatever_its_lease() -> None:
    # A kernel answers handshakes for a frozen or busy process: no handshake at all is a
    # host down or cut off, and HAProxy (beside the watcher) cannot reach it either.
    assert actions([unreachable(t) for t in polls(1.0)]) == ["suspect"] * 4 + ["fence"]
    fenced = run([unreachable(t, lease_age_s=None) for t in polls(1.0)])[-1]
    assert fenced.action == "fence" and "has not answered a connection" in fenced.sentence


def test_only_the_time_without_any_connection_counts_towards_the_unreachable_rule() -> None:
    # A second of timeouts (a busy leader still renewing), then one poll with no connection:
    # that is not a second without a connection.
    observed = [silent(t, lease_age_s=0.0) for t in polls(1.0)] + [unreachable(1.25)]
    assert actions(observed)[-1] == "suspect"
    later = [unreachable(1.25 + t) for t in polls(1.0)]
    assert actions(observed + later)[-1] == "fence"


@pytest.mark.parametrize(
    "mixed",
    [
        pytest.param({"rest": "timeout"}, id="patroni-connected-but-silent"),
        pytest.param({"pg": "timeout"}, id="postgres-connected-but-silent"),
    ],
)
def test_a_host_that_still_takes_a_connection_waits_for_the_stale_lease(
    mixed: dict[str, str],
) -> None:
    # One probe got a handshake: the host is there, maybe only slow, so the stall rule holds.
    observed = [unreachable(t, lease_age_s=1.0, **mixed) for t in polls(3.0)]
    assert set(actions(observed)) == {"suspect"}


# --- false positives: never fence, never release -------------------------------------------


def test_a_busy_leader_that_keeps_renewing_its_lease_is_never_fenced() -> None:
    # Under load both probes time out for 3 s, but Patroni still renews the lease (age 0..4).
    observed = [silent(t, lease_age_s=float(i % 5)) for i, t in enumerate(polls(3.0))]
    assert set(actions(observed)) == {"suspect"}


@pytest.mark.parametrize("lease_age_s", [0.0, 2.0, 3.0, 8.0, 20.0])
def test_a_slow_patroni_status_is_never_taken_for_a_demotion(lease_age_s: float) -> None:
    # /liveness answers, /patroni did not in time (role unknown), PostgreSQL times out.
    observed = [
        obs(t, pg="timeout", role=None, pg_state=None, lease_age_s=lease_age_s) for t in polls(5.0)
    ]
    assert set(actions(observed)) == {"none"}


def test_only_patroni_silent_is_never_acted_on() -> None:
    # supervisord restarts Patroni in ~2 s; PostgreSQL keeps serving meanwhile.
    observed = [
        obs(t, rest=rest, role=None, pg_state=None, lease_age_s=t)
        for t in polls(30.0)
        for rest in ("refused", "timeout")
    ]
    assert set(actions(observed)) == {"none"}


@pytest.mark.parametrize("pg_state", ["starting", "crashed", "restarting"])
@pytest.mark.parametrize("pg", ["refused", "timeout"])
def test_only_postgres_silent_with_a_fresh_lease_is_never_acted_on(pg: str, pg_state: str) -> None:
    # Patroni restarts PostgreSQL in place and keeps renewing its lease (age 0..2).
    observed = [
        obs(t, pg=pg, role="primary", pg_state=pg_state, lease_age_s=float(i % 3))
        for i, t in enumerate(polls(30.0))
    ]
    assert set(actions(observed)) == {"none"}


@pytest.mark.parametrize(
    "hold",
    [pytest.param({"paused": True}, id="paused"), pytest.param({"held": True}, id="held")],
)
def test_a_paused_or_held_cluster_is_never_acted_on(hold: dict[str, bool]) -> None:
    scenarios = [
        [dead(t) for t in polls(5.0)],
        [silent(t, lease_age_s=30.0) for t in polls(5.0)],
        [obs(t, role="demoted", pg_state="stopped", lease_age_s=30.0) for t in polls(5.0)],
        [obs(t, lease_age_s=30.0) for t in polls(5.0)],
    ]
    for observed in scenarios:
        observed = [replace(o, **hold) for o in observed]
        assert set(actions(observed)) == {"none"}


def test_an_unreadable_etcd_never_fences_or_releases() -> None:
    scenarios = [
        [dead(t) for t in polls(10.0)],
        [silent(t, lease_age_s=30.0) for t in polls(10.0)],
        [obs(t, role="demoted", pg_state="stopped", lease_age_s=30.0) for t in polls(10.0)],
        [obs(t, lease_age_s=30.0) for t in polls(10.0)],
    ]
    for observed in scenarios:
        blind = [replace(o, etcd_ok=False, leader=None) for o in observed]
        # The first poll sees etcd so that the watcher knows the last leader.
        decisions = run([dead(-POLL_S), *blind])
        assert not {d.action for d in decisions} & {"fence", "release"}


def test_silence_during_an_etcd_outage_counts_towards_detection() -> None:
    # Losing the node that hosted etcd's raft leader costs an etcd election (~1 s): when etcd
    # answers again and still names the silent leader, it is fenced at once.
    blind = [replace(dead(t), etcd_ok=False, leader=None) for t in polls(1.0)]
    decisions = run([*blind, dead(1.25)], state=WatchState(leader="pg1"))
    assert [d.action for d in decisions[:-1]] == ["suspect"] * len(blind)
    assert decisions[-1].action == "fence"


def test_an_etcd_outage_with_the_leader_answering_keeps_no_timer() -> None:
    blind = replace(obs(0.0), etcd_ok=False, leader=None)
    decision, state = decide(WatchState(leader="pg1", down_since=-5.0), blind, TIMINGS)
    assert decision.action == "none"
    assert state.down_since is None


# --- stalled node: timeouts and a lease nobody renews ---------------------------------------


@pytest.mark.parametrize(
    ("lease_age_s", "expected_last"),
    [
        pytest.param(6.0, "fence", id="lease-at-stall_s"),
        pytest.param(20.0, "fence", id="lease-well-past-stall_s"),
        pytest.param(5.0, "suspect", id="lease-just-under-stall_s"),
        pytest.param(None, "suspect", id="lease-unknown"),
    ],
)
def test_a_silent_leader_is_fenced_only_once_its_lease_is_stale(
    lease_age_s: float | None, expected_last: str
) -> None:
    decided = actions([silent(t, lease_age_s) for t in polls(1.0)])
    assert decided == ["suspect"] * 4 + [expected_last]


def test_a_stale_lease_does_not_skip_detect_s() -> None:
    # Even a lease that is long stale needs detect_s of silence: one lost poll is not a stall.
    assert actions([silent(t, 30.0) for t in polls(0.75)]) == ["suspect"] * 4


def test_a_silent_leader_with_no_lease_age_is_never_fenced() -> None:
    assert set(actions([silent(t, None) for t in polls(60.0)])) == {"suspect"}


# --- demoted leader: answers, no longer primary, lease not renewed ----------------------------


@pytest.mark.parametrize(
    ("role", "pg_state", "lease_age_s", "expected"),
    [
        pytest.param("primary", "stopping", 3.0, "release", id="offline-demotion-stopping"),
        pytest.param("demoted", "stopped", 3.0, "release", id="demoted-stopped"),
        pytest.param("primary", "stopped", 10.0, "release", id="primary-stopped-old-lease"),
        pytest.param("primary", "stopping", 2.0, "none", id="stopping-fresh-lease"),
        pytest.param("demoted", "stopped", 0.0, "none", id="demoted-fresh-lease"),
        pytest.param("demoted", "stopped", None, "none", id="demoted-lease-unknown"),
    ],
)
def test_a_demoted_leader_loses_its_key_only_once_its_lease_is_stale(
    role: str, pg_state: str, lease_age_s: float | None, expected: str
) -> None:
    decision, _ = decide(
        WatchState(), obs(0.0, role=role, pg_state=pg_state, lease_age_s=lease_age_s), TIMINGS
    )
    assert decision.action == expected


# --- stale but running primary --------------------------------------------------------------


@pytest.mark.parametrize(
    ("lease_age_s", "failsafe_active", "release_running", "expected"),
    [
        pytest.param(13.0, False, True, "release", id="stale-synchronous"),
        pytest.param(40.0, False, True, "release", id="very-stale-synchronous"),
        pytest.param(13.0, True, True, "none", id="failsafe-active"),
        pytest.param(13.0, False, False, "none", id="asynchronous-mode"),
        pytest.param(12.0, False, True, "none", id="within-patronis-own-bound"),
    ],
)
def test_a_stale_running_primary_loses_its_key_only_in_synchronous_mode(
    lease_age_s: float, failsafe_active: bool, release_running: bool, expected: str
) -> None:
    timings = replace(TIMINGS, release_running=release_running)
    observed = obs(0.0, lease_age_s=lease_age_s, failsafe_active=failsafe_active)
    decision, _ = decide(WatchState(), observed, timings)
    assert decision.action == expected


# --- fenced nodes and their key -------------------------------------------------------------


def test_a_fenced_node_still_holding_the_key_has_it_released() -> None:
    state = after_fence(WatchState(leader="pg1", down_since=0.0), "pg1", confirmed=True)
    assert state.fenced == {"pg1"} and state.down_since is None
    decision, state = decide(state, dead(2.0), TIMINGS)
    assert (decision.action, decision.node) == ("release", "pg1")
    state = after_release(state, "pg1", released=True)
    assert state.fenced == frozenset() and state.leader is None


def test_an_unconfirmed_fence_leaves_the_key_to_its_ttl() -> None:
    state = after_fence(WatchState(leader="pg1", down_since=0.0), "pg1", confirmed=False)
    assert state.fenced == frozenset() and state.down_since is None


def test_a_failed_release_is_tried_again() -> None:
    state = WatchState(leader="pg1", fenced=frozenset({"pg1"}))
    assert after_release(state, "pg1", released=False) == state
    decision, _ = decide(state, dead(2.0), TIMINGS)
    assert decision.action == "release"


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(obs(2.0, leader="pg2"), id="another-leader"),
        pytest.param(obs(2.0, leader=None), id="no-leader"),
    ],
)
def test_a_fenced_node_that_lost_the_key_is_forgotten(later: Observation) -> None:
    state = WatchState(leader="pg1", fenced=frozenset({"pg1"}))
    decision, state = decide(state, later, TIMINGS)
    assert decision.action == "none"
    assert state.fenced == frozenset()
    # Should pg1 win the key again later, it is a fresh leader, not a node to release.
    decision, _ = decide(state, obs(3.0, leader="pg1"), TIMINGS)
    assert decision.action == "none"


# --- sentences --------------------------------------------------------------------------------


def test_every_decision_that_acts_names_its_node() -> None:
    scenarios = [
        [dead(t) for t in polls(1.0)],
        [silent(t, 9.0) for t in polls(1.0)],
        [silent(t, None) for t in polls(1.0)],
        [obs(0.0, role="demoted", pg_state="stopped", lease_age_s=5.0)],
        [obs(0.0, lease_age_s=13.0)],
        [obs(0.0, rest="refused", role=None, pg_state=None)],
        [obs(0.0, pg="refused", pg_state="starting")],
        [obs(0.0, pg="timeout", role=None, pg_state=None, lease_age_s=5.0)],
    ]
    decisions = [d for observed in scenarios for d in run(observed)]
    # The last known leader, suspected while etcd cannot be read.
    blind = [replace(dead(t, "pg3"), etcd_ok=False, leader=None) for t in polls(1.0)]
    decisions += run(blind, state=WatchState(leader="pg3"))
    decisions += run([dead(0.0, "pg2")], state=WatchState(fenced=frozenset({"pg2"})))
    acting = [d for d in decisions if d.action != "none"]
    assert {d.action for d in acting} == {"suspect", "fence", "release"}
    for d in acting:
        assert d.node is not None and d.node in d.sentence, d


# --- fence scope and readmission --------------------------------------------------------------


@pytest.mark.parametrize(
    ("has_etcd", "healthy", "kill_etcd"),
    [
        pytest.param(True, {"pg1": True, "pg2": True, "pg3": True}, False, id="healthy-member"),
        pytest.param(True, {"pg1": False, "pg2": True, "pg3": True}, True, id="unhealthy"),
        pytest.param(True, {"pg2": True, "pg3": True}, True, id="member-not-answering"),
        pytest.param(False, {"pg2": True, "pg3": True}, False, id="no-member"),
    ],
)
def test_a_fence_kills_the_nodes_etcd_member_only_when_it_is_unhealthy(
    has_etcd: bool, healthy: dict[str, bool], kill_etcd: bool
) -> None:
    # A healthy member is never killed: a fence must never cost etcd quorum.
    scope = fence_scope("pg1", has_etcd, healthy)
    assert scope.kill_etcd is kill_etcd
    assert "pg1" in scope.sentence


@pytest.mark.parametrize(
    ("roles", "leader", "back"),
    [
        pytest.param({"pg1": ("replica", "running")}, "pg2", ["pg1"], id="replica"),
        pytest.param({"pg1": ("sync_standby", "running")}, "pg2", ["pg1"], id="sync-standby"),
        pytest.param({"pg1": ("primary", "running")}, "pg1", ["pg1"], id="elected-leader"),
        pytest.param({"pg1": ("primary", "running")}, "pg2", [], id="stray-primary"),
        pytest.param({"pg1": ("master", "running")}, None, [], id="primary-without-leader"),
        pytest.param({"pg1": ("replica", "starting")}, "pg2", [], id="replica-not-running"),
        pytest.param({"pg1": ("demoted", "stopped")}, "pg2", [], id="demoted"),
        pytest.param({}, "pg2", [], id="no-answer"),
    ],
)
def test_only_replicas_or_the_elected_leader_are_readmitted(
    roles: dict[str, tuple[str | None, str | None]], leader: str | None, back: list[str]
) -> None:
    assert readmit(frozenset({"pg1"}), roles, leader) == back


def test_readmit_returns_nodes_in_name_order() -> None:
    roles: dict[str, tuple[str | None, str | None]] = {
        n: ("replica", "running") for n in ("pg1", "pg2", "pg3")
    }
    assert readmit(frozenset({"pg3", "pg1"}), roles, "pg2") == ["pg1", "pg3"]


# --- configuration ----------------------------------------------------------------------------


def test_watcher_config_round_trips_from_the_rendered_file() -> None:
    plan = derive_plan(StackSpec())
    text = render_watcher_config(plan)
    config = WatcherConfig.from_json(text)
    assert json.loads(json.dumps(asdict(config))) == json.loads(text)
    assert config.timings == plan.watcher
    assert config.fence_command == ""  # one machine: the watcher stops processes itself
    assert [n.name for n in config.nodes] == ["pg1", "pg2", "pg3"]
    assert config.etcd_urls_without("pg1") == tuple(
        u for u in config.etcd_urls if u != config.nodes[0].etcd_url
    )


def test_on_hosts_the_watcher_fences_with_the_operators_commands() -> None:
    hosts = [{"name": f"db{i}", "address": f"10.9.0.{i}", "runs": [f"pg{i}"]} for i in (1, 2, 3)]
    spec = StackSpec.model_validate(
        {
            "target": "systemd",
            "hosts": hosts,
            "fencing": {"command": "fence $HASTACK_FENCE_HOST", "unfence_command": "on"},
        }
    )
    config = WatcherConfig.from_json(render_watcher_config(derive_plan(spec)))
    assert (config.fence_command, config.unfence_command) == ("fence $HASTACK_FENCE_HOST", "on")
    # The watcher's own host (the services') is fenced by stopping processes, not powered off.
    assert config.own_host == "db1"
    assert [config.fenced_by_command(n) for n in config.nodes] == [False, True, True]
    assert [(n.name, n.host) for n in config.nodes] == [
        ("pg1", "db1"),
        ("pg2", "db2"),
        ("pg3", "db3"),
    ]
    assert config.applied_spec.endswith("/hastack.yaml")
    without = StackSpec.model_validate({"target": "systemd", "hosts": hosts})
    assert WatcherConfig.from_json(render_watcher_config(derive_plan(without))).fence_command == ""
