"""The healer's rules, table-driven: which stopped program it starts again, when, and what it
leaves alone. Each scenario feeds polls through `plan_heal` as the watcher's loop does."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from hastack.runtime.healing import (
    HealAction,
    HealInput,
    HealState,
    HealTimings,
    ProgramView,
    Waiting,
    host_return,
    node_fenced,
    node_returned,
    plan_heal,
)

TIMINGS = HealTimings()
ETCD1, ETCD2, ETCD3 = "pg1:pg1-etcd", "pg2:pg2-etcd", "pg3:pg3-etcd"
PATRONI1, PATRONI2 = "pg1:pg1-patroni", "pg2:pg2-patroni"
HAPROXY, APP1, FENCER = "haproxy:haproxy", "app1:app1", "fencer:fencer"


def program(process_name: str, state: str = "STOPPED") -> ProgramView:
    """`pg1:pg1-etcd` is etcd of node pg1; `haproxy:haproxy` a service of no node."""
    group, name = process_name.split(":")
    if group.startswith("pg"):
        return ProgramView(process_name, name.split("-")[1], group, state)
    return ProgramView(process_name, "app" if group.startswith("app") else group, None, state)


def poll(
    state: HealState,
    t: float,
    programs: dict[str, str],
    leader: str | None = "pg2",
    timings: HealTimings = TIMINGS,
    **kw: object,
) -> tuple[list[HealAction], list[Waiting], HealState]:
    """One poll; `programs`: process name -> supervisor state; etcd readable unless told."""
    inp = HealInput(
        t=t,
        programs=tuple(program(n, s) for n, s in programs.items()),
        etcd_ok=bool(kw.pop("etcd_ok", True)),
        leader=leader,
        **kw,  # type: ignore[arg-type]
    )
    return plan_heal(state, inp, timings)


def first_start(
    programs: dict[str, str],
    times: list[float],
    state: HealState | None = None,
    **kw: object,
) -> dict[str, float]:
    """Process name -> time of the first poll that started it (programs stay as given)."""
    state = state or HealState()
    started: dict[str, float] = {}
    for t in times:
        actions, _, state = poll(state, t, programs, **kw)
        for action in actions:
            started.setdefault(action.process_name, t)
    return started


def seconds(first: float, last: float, step: float = 0.5) -> list[float]:
    return [first + i * step for i in range(int((last - first) / step) + 1)]


# --- grace, states and components --------------------------------------------------------------


@pytest.mark.parametrize("down_state", ["STOPPED", "EXITED", "FATAL"])
def test_a_program_down_is_started_only_after_grace_s(down_state: str) -> None:
    # hastack's own stop-then-start must never be raced.
    assert first_start({ETCD1: down_state}, seconds(0.0, 10.0)) == {ETCD1: TIMINGS.grace_s}


def test_a_program_that_comes_back_within_grace_s_is_not_started() -> None:
    state = HealState()
    for t, etcd_state in [(0.0, "STOPPED"), (1.5, "RUNNING"), (2.5, "STOPPED"), (4.0, "STOPPED")]:
        actions, _, state = poll(state, t, {ETCD1: etcd_state})
        assert actions == [], t
    # The down spell started again at 2.5: grace runs from there.
    actions, _, _ = poll(state, 4.5, {ETCD1: "STOPPED"})
    assert [a.process_name for a in actions] == [ETCD1]


@pytest.mark.parametrize("taken_care_of", ["RUNNING", "STARTING", "BACKOFF", "STOPPING"])
def test_a_program_supervisord_takes_care_of_is_never_touched(taken_care_of: str) -> None:
    state = HealState()
    for t in seconds(0.0, 600.0, 5.0):
        actions, waiting, state = poll(state, t, {ETCD1: taken_care_of, PATRONI1: taken_care_of})
        assert (actions, waiting) == ([], [])


def test_the_watcher_never_starts_itself() -> None:
    state = HealState()
    for t in seconds(0.0, 600.0, 5.0):
        actions, waiting, state = poll(state, t, {FENCER: "STOPPED"})
        assert (actions, waiting) == ([], [])


# --- paused, held ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("standstill", "why"),
    [
        pytest.param({"paused": True}, "paused", id="paused"),
        pytest.param({"held_all": True}, "holds the watcher", id="held-all"),
    ],
)
def test_a_paused_or_held_cluster_gets_nothing_started(
    standstill: dict[str, bool], why: str
) -> None:
    programs = {ETCD1: "STOPPED", PATRONI1: "FATAL", HAPROXY: "EXITED"}
    state = HealState()
    for t in seconds(0.0, 120.0, 5.0):
        actions, waiting, state = poll(state, t, programs, **standstill)
        assert actions == []
        assert sorted(w.process_name for w in waiting) == sorted(programs)
        assert all(why in w.sentence for w in waiting)


def test_a_scoped_hold_keeps_exactly_its_programs_down() -> None:
    # A drill keeping two etcd members away on purpose; everything else still heals.
    programs = {ETCD1: "STOPPED", ETCD2: "STOPPED", ETCD3: "STOPPED", HAPROXY: "STOPPED"}
    held = frozenset({ETCD2, ETCD3})
    started = first_start(programs, seconds(0.0, 120.0, 1.0), held=held)
    assert started == {ETCD1: 2.0, HAPROXY: 2.0}
    _, waiting, _ = poll(HealState(), 0.0, programs, held=held)
    held_waiting = {w.process_name: w.sentence for w in waiting if w.process_name in held}
    assert held_waiting == {n: f"{n} is stopped and held down on purpose" for n in sorted(held)}


# --- Patroni of a fenced node ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("etcd_ok", "leader", "starts"),
    [
        pytest.param(True, "pg1", False, id="key-still-names-it"),
        pytest.param(False, None, False, id="etcd-unreadable"),
        pytest.param(False, "pg2", False, id="etcd-unreadable-stale-leader"),
        pytest.param(True, "pg2", True, id="another-node-holds-the-key"),
    ],
)
def test_patroni_of_a_fenced_node_waits_for_another_leader(
    etcd_ok: bool, leader: str | None, starts: bool
) -> None:
    # Started while the key still names it, it would promote itself back.
    fenced = node_fenced(HealState(), "pg1", 100.0)
    times = seconds(100.0, 120.0)
    started = first_start({PATRONI1: "STOPPED"}, times, fenced, leader=leader, etcd_ok=etcd_ok)
    assert started == ({PATRONI1: 100.0 + TIMINGS.grace_s} if starts else {})


def test_patroni_of_a_fenced_node_starts_as_soon_as_another_node_holds_the_key() -> None:
    state = node_fenced(HealState(), "pg1", 100.0)
    for t in seconds(100.0, 110.0):
        actions, waiting, state = poll(state, t, {PATRONI1: "STOPPED"}, leader="pg1")
        assert actions == []
    assert "still names it" in waiting[0].sentence
    actions, _, _ = poll(state, 110.5, {PATRONI1: "STOPPED"}, leader="pg3")
    assert [a.process_name for a in actions] == [PATRONI1]
    assert "pg3 now holds the leader key" in actions[0].sentence


def test_patroni_of_a_fenced_node_starts_when_no_leader_appears_for_no_leader_grace_s() -> None:
    # Nobody else could take over: the old node is needed for an election.
    fenced = node_fenced(HealState(), "pg1", 100.0)
    started = first_start({PATRONI1: "STOPPED"}, seconds(100.0, 200.0), fenced, leader=None)
    assert started == {PATRONI1: 100.0 + TIMINGS.no_leader_grace_s}


def test_the_no_leader_clock_runs_from_monotonic_zero() -> None:
    fenced = node_fenced(HealState(), "pg1", 0.0)
    started = first_start({PATRONI1: "STOPPED"}, seconds(0.0, 100.0), fenced, leader=None)
    assert started == {PATRONI1: TIMINGS.no_leader_grace_s}


def test_the_no_leader_clock_stops_when_a_leader_appears() -> None:
    state = node_fenced(HealState(), "pg1", 100.0)
    for t in seconds(100.0, 125.0):
        _, _, state = poll(state, t, {PATRONI1: "STOPPED"}, leader=None)
    # A leader appeared and vanished again (the key named pg1): the wait starts over.
    _, _, state = poll(state, 125.5, {PATRONI1: "STOPPED"}, leader="pg1")
    assert state.no_leader_since is None
    started = first_start({PATRONI1: "STOPPED"}, seconds(126.0, 200.0), state, leader=None)
    assert started == {PATRONI1: 126.0 + TIMINGS.no_leader_grace_s}


@pytest.mark.parametrize("leader", ["pg1", None])
def test_patroni_of_a_node_not_fenced_starts_after_grace(leader: str | None) -> None:
    # It finds its own place in the cluster, and adopts a PostgreSQL that still runs.
    started = first_start({PATRONI1: "STOPPED"}, seconds(0.0, 10.0), leader=leader)
    assert started == {PATRONI1: TIMINGS.grace_s}


def test_a_returned_node_is_no_longer_treated_as_fenced() -> None:
    state = node_fenced(node_fenced(HealState(), "pg1", 100.0), "pg2", 101.0)
    assert dict(state.fenced) == {"pg1": 100.0, "pg2": 101.0}
    state = node_returned(state, "pg1")
    assert dict(state.fenced) == {"pg2": 101.0}
    # The key names pg1, which came back: its Patroni is an ordinary one again, while the
    # still-fenced pg2 would wait while the key names it.
    programs = {PATRONI1: "STOPPED"}
    assert first_start(programs, [110.0, 113.0], state, leader="pg1") == {PATRONI1: 113.0}
    programs = {PATRONI2: "STOPPED"}
    assert first_start(programs, [110.0, 113.0], state, leader="pg2") == {}


# --- order -------------------------------------------------------------------------------------


def test_etcd_is_started_before_patroni_and_the_services() -> None:
    programs = {APP1: "STOPPED", HAPROXY: "STOPPED", PATRONI1: "STOPPED", ETCD1: "STOPPED"}
    state = HealState()
    _, _, state = poll(state, 0.0, programs)
    actions, _, _ = poll(state, 5.0, programs)
    assert [a.process_name for a in actions] == [ETCD1, PATRONI1, HAPROXY, APP1]


# --- crash loops -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "wait_s"),
    [(0, 0.0), (1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0), (7, 300.0), (20, 300.0)],
)
def test_backoff_doubles_per_failure_up_to_max_backoff_s(failures: int, wait_s: float) -> None:
    assert TIMINGS.backoff(failures) == wait_s


def crash_loop(
    timings: HealTimings, until_s: float, up_s: float = 1.0
) -> tuple[list[tuple[float, HealAction]], dict[float, list[Waiting]], HealState]:
    """A program that dies `up_s` after every start, polled every second from t=0: the
    starts (with their times), what waited at each poll, and the last state."""
    state = HealState()
    started_at: float | None = None
    starts: list[tuple[float, HealAction]] = []
    waiting: dict[float, list[Waiting]] = {}
    for t in seconds(0.0, until_s, 1.0):
        if started_at is None:
            prog_state = "STOPPED"
        else:
            prog_state = "RUNNING" if t - started_at <= up_s else "FATAL"
        acted, waiting[t], state = poll(state, t, {ETCD1: prog_state}, timings=timings)
        starts += [(t, a) for a in acted]
        if acted:
            started_at = t
    return starts, waiting, state


def test_a_crash_loop_backs_off_between_starts() -> None:
    timings = HealTimings(max_backoff_s=40.0)
    starts, _, _ = crash_loop(timings, until_s=180.0)
    times = [t for t, _ in starts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Each wait runs from the failure, which the poll sees 2 s after the start (it runs 1 s):
    # 2 + 5, 2 + 10, 2 + 20, then 2 + max_backoff_s.
    assert times[0] == timings.grace_s
    assert gaps == [7.0, 12.0, 22.0, 42.0, 42.0, 42.0]
    assert "attempt" not in starts[0][1].sentence
    assert "(attempt 2)" in starts[1][1].sentence and "(attempt 4)" in starts[3][1].sentence


def test_a_crash_loop_is_reported_as_waiting_with_failures_and_next_try() -> None:
    # Starts at 2; falls at 4, so the next start waits 5 s: 9; falls at 11, so the next waits
    # 10 s, for 21: at 15 it is two failures and 6 s away.
    _, waiting, state = crash_loop(HealTimings(), until_s=15.0)
    assert len(waiting[15.0]) == 1
    entry = waiting[15.0][0]
    assert (entry.process_name, entry.failures, entry.next_try_in_s) == (ETCD1, 2, 6.0)
    assert ETCD1 in entry.sentence and "backing off" in entry.sentence
    assert state.programs[ETCD1].failures == 2


@pytest.mark.parametrize(
    ("falls_at", "failures", "attempt"),
    [
        pytest.param(61.0, 1, "(attempt 2)", id="falls-within-stable_s"),
        pytest.param(63.0, 0, None, id="stayed-up-for-stable_s"),
    ],
)
def test_a_program_that_stayed_up_for_stable_s_forgets_its_failures(
    falls_at: float, failures: int, attempt: str | None
) -> None:
    state = HealState()
    _, _, state = poll(state, 0.0, {ETCD1: "STOPPED"})
    actions, _, state = poll(state, 2.0, {ETCD1: "STOPPED"})  # started by the healer at 2
    assert actions
    for t in seconds(3.0, falls_at - 1.0, 1.0):
        _, _, state = poll(state, t, {ETCD1: "RUNNING"})
    _, _, state = poll(state, falls_at, {ETCD1: "FATAL"})
    assert state.programs[ETCD1].failures == failures
    wait_s = max(TIMINGS.grace_s, TIMINGS.backoff(failures))
    actions, _, _ = poll(state, falls_at + wait_s, {ETCD1: "FATAL"})
    assert [a.process_name for a in actions] == [ETCD1]
    if attempt:
        assert attempt in actions[0].sentence
    else:
        assert "attempt" not in actions[0].sentence


# --- sentences ---------------------------------------------------------------------------------


def test_every_action_sentence_names_its_program() -> None:
    scenarios: list[Callable[[], list[HealAction]]] = [
        lambda: [a for _, a in crash_loop(HealTimings(), until_s=60.0)[0]],
        lambda: poll(
            poll(HealState(), 0.0, {APP1: "EXITED", HAPROXY: "FATAL"})[2],
            5.0,
            {APP1: "EXITED", HAPROXY: "FATAL"},
        )[0],
        lambda: poll(
            poll(node_fenced(HealState(), "pg1", 0.0), 10.0, {PATRONI1: "STOPPED"})[2],
            15.0,
            {PATRONI1: "STOPPED"},
            leader="pg2",
        )[0],
        lambda: poll(
            poll(node_fenced(HealState(), "pg1", 90.0), 100.0, {PATRONI1: "STOPPED"}, None)[2],
            130.0,
            {PATRONI1: "STOPPED"},
            leader=None,
        )[0],
    ]
    actions = [a for scenario in scenarios for a in scenario()]
    assert {a.process_name for a in actions} == {ETCD1, APP1, HAPROXY, PATRONI1}
    assert len(actions) >= 6
    for action in actions:
        assert action.process_name in action.sentence, action


# --- what counts as a failure ------------------------------------------------------------------


def cycles(held: frozenset[str], down_state: str, rounds: int = 6) -> tuple[list[Waiting], int]:
    """etcd1 started by the healer, then taken down again 10 s later, `rounds` times (each
    down spell under `held`, as a drill keeping it down does); the waits of the last poll and
    how many times it was started."""
    state, started, t = HealState(), 0, 0.0
    waiting: list[Waiting] = []
    for _ in range(rounds):
        for _ in range(40):  # 20 s down (held or not), then released
            actions, waiting, state = poll(state, t, {ETCD1: down_state}, held=held)
            started += len(actions)
            t += 0.5
        actions, waiting, state = poll(state, t, {ETCD1: down_state})
        started += len(actions)
        for _ in range(20):  # up for 10 s: less than stable_s
            t += 0.5
            _, _, state = poll(state, t, {ETCD1: "RUNNING"})
    return waiting, started


def test_a_program_kept_down_on_purpose_again_and_again_never_backs_off() -> None:
    # The etcd-quorum-loss drill, repeated: stopped under a scoped hold, released, started
    # by the healer, stopped again less than stable_s later. Not a crash loop.
    waiting, started = cycles(frozenset({ETCD1}), "STOPPED")
    assert started == 6
    assert not [w for w in waiting if w.failures]


def test_an_operator_stop_is_not_a_failure() -> None:
    # Started again after each stop; the script keeps reporting STOPPED for 20 s, so the
    # healer tries again every backoff_s (a start that did not take), never backing off.
    waiting, started = cycles(frozenset(), "STOPPED")
    assert started == 6 * 4 and not [w for w in waiting if w.failures]


def test_a_program_that_exits_by_itself_again_and_again_backs_off() -> None:
    # Against the operator's stops above: the same rhythm, but each spell is an exit.
    _, waiting, state = crash_loop(HealTimings(), until_s=60.0, up_s=10.0)
    assert state.programs[ETCD1].failures >= 2
    assert any(w.failures for ws in waiting.values() for w in ws)


def test_a_fence_of_the_node_counts_as_a_failure_of_its_patroni() -> None:
    state = node_fenced(HealState(), "pg1", 0.0)
    _, _, state = poll(state, 0.0, {PATRONI1: "STOPPED"}, leader="pg2")
    actions, _, state = poll(state, 2.5, {PATRONI1: "STOPPED"}, leader="pg2")
    assert [a.process_name for a in actions] == [PATRONI1]
    _, _, state = poll(state, 10.0, {PATRONI1: "RUNNING"}, leader="pg2")
    state = node_fenced(state, "pg1", 20.0)  # fenced again 17.5 s after its start
    _, _, state = poll(state, 20.5, {PATRONI1: "STOPPED"}, leader="pg2")
    assert state.programs[PATRONI1].failures == 1


# --- a host fenced by the operator's command -----------------------------------------------


def test_a_command_fenced_host_comes_back_by_the_fenced_patroni_rule() -> None:
    # Its programs are held down while the host is off; whether the host may be brought
    # back (fencing.unfence_command) follows the rule of a fenced node's Patroni.
    held = frozenset({PATRONI1, ETCD1})
    state = node_fenced(HealState(), "pg1", 100.0)
    _, waiting, state = poll(state, 101.0, {PATRONI1: "STOPPED"}, leader="pg1", held=held)
    assert waiting[0].sentence.endswith("held down on purpose")
    inp = HealInput(t=101.0, programs=(), etcd_ok=True, leader="pg1")
    verdict = host_return(state, inp, "pg1", "db1", TIMINGS)
    assert isinstance(verdict, Waiting) and "still names it" in verdict.sentence
    inp = HealInput(t=102.0, programs=(), etcd_ok=True, leader="pg3")
    verdict = host_return(state, inp, "pg1", "db1", TIMINGS)
    assert isinstance(verdict, HealAction)
    assert "pg3 now holds the leader key: starting pg1's host db1" in verdict.sentence
    # No leader at all for no_leader_grace_s: the old host is needed for an election.
    for t in seconds(110.0, 110.0 + TIMINGS.no_leader_grace_s):
        _, _, state = poll(state, t, {}, leader=None)
    inp = HealInput(t=110.0 + TIMINGS.no_leader_grace_s, programs=(), etcd_ok=True, leader=None)
    assert isinstance(host_return(state, inp, "pg1", "db1", TIMINGS), HealAction)
    # Never while the cluster is paused or hastack holds the watcher (a restore).
    for hold in ({"paused": True}, {"held_all": True}):
        inp = HealInput(t=500.0, programs=(), etcd_ok=True, leader="pg3", **hold)  # type: ignore[arg-type]
        verdict = host_return(state, inp, "pg1", "db1", TIMINGS)
        assert isinstance(verdict, Waiting) and "stays fenced for now" in verdict.sentence
