"""The watcher's decision to unblock WAL archiving stuck behind an older timeline's segment."""

from __future__ import annotations

from hastack.runtime.archive_unblock import (
    DIFFERENT_CHECKSUM,
    UnblockState,
    UnblockTimings,
    after_push,
    old_timeline_ready,
    plan_checks,
    sentence,
)
from hastack.runtime.replica_repair import members_from_dcs

OLD = "0000000B000000000000003B"
CURRENT = "0000000F0000000000000042"
STATUS = [
    f"{OLD}.ready",
    f"{CURRENT}.ready",
    "0000000C.history.ready",
    "0000000B000000000000003C.partial.ready",
    "0000000A0000000000000030.done",
    "not-a-segment.ready",
]
T = UnblockTimings(after_s=20.0, retry_s=10.0, every_s=300.0)


def test_only_plain_ready_segments_of_an_older_timeline_count() -> None:
    assert old_timeline_ready(STATUS, 15) == [OLD]
    assert old_timeline_ready(STATUS, 11) == []  # its own timeline: a real problem, kept
    assert old_timeline_ready(STATUS, 16) == [OLD, CURRENT]


def test_a_segment_is_checked_only_once_it_stayed_ready_for_a_while() -> None:
    due, state = plan_checks(UnblockState(), 0.0, "pg1", 15, STATUS, T)
    assert due == []
    due, state = plan_checks(state, 19.0, "pg1", 15, STATUS, T)
    assert due == []
    due, state = plan_checks(state, 20.0, "pg1", 15, STATUS, T)
    assert due == [OLD]


def test_a_segment_is_not_asked_about_again_before_every_s() -> None:
    state = UnblockState()
    for t in (0.0, 20.0):
        due, state = plan_checks(state, t, "pg1", 15, STATUS, T)
    assert due == [OLD]
    due, state = plan_checks(state, 100.0, "pg1", 15, STATUS, T)
    assert due == []
    due, state = plan_checks(state, 320.0, "pg1", 15, STATUS, T)
    assert due == [OLD]


def test_an_undecided_answer_is_asked_again_soon_then_less_often() -> None:
    """Seen in a clean-clone run: pgBackRest's asynchronous push (PostgreSQL retrying the
    segment) held the repository's archive lock; waiting five minutes left archiving stuck."""
    state = UnblockState()
    for t in (0.0, 20.0):
        due, state = plan_checks(state, t, "pg1", 15, STATUS, T)
    assert due == [OLD]
    asked = [20.0]
    t = 20.0
    while t < 400.0:
        if due:
            state = after_push(state, OLD, t, decided=False, timings=T)
        t += 5.0
        due, state = plan_checks(state, t, "pg1", 15, STATUS, T)
        if due:
            asked.append(t)
    assert asked[:6] == [20.0, 30.0, 50.0, 90.0, 170.0, 330.0]  # 10, 20, 40, 80, 160 s
    state = after_push(state, OLD, 330.0, decided=True, timings=T)
    assert OLD not in state.failures and state.next_check[OLD] == 630.0


def test_a_segment_that_got_archived_is_forgotten() -> None:
    due, state = plan_checks(UnblockState(), 0.0, "pg1", 15, STATUS, T)
    due, state = plan_checks(state, 10.0, "pg1", 15, [f"{OLD}.done"], T)
    assert due == [] and dict(state.ready_since) == {}
    due, state = plan_checks(state, 25.0, "pg1", 15, STATUS, T)
    assert due == []  # ready again: its wait starts again


def test_a_new_leader_or_an_unknown_timeline_starts_afresh() -> None:
    due, state = plan_checks(UnblockState(), 0.0, "pg1", 15, STATUS, T)
    due, state = plan_checks(state, 30.0, "pg2", 15, STATUS, T)
    assert due == [] and state.node == "pg2"
    due, state = plan_checks(state, 40.0, "pg2", None, STATUS, T)
    assert due == [] and state == UnblockState()
    due, state = plan_checks(state, 50.0, None, 15, STATUS, T)
    assert due == []


def test_the_sentence_says_what_pgbackrest_answered() -> None:
    done = sentence("pg1", OLD, 15, DIFFERENT_CHECKSUM, "ERROR: [045]: ...")
    assert "timeline 11" in done and "marked done" in done
    failed = sentence("pg1", OLD, 15, DIFFERENT_CHECKSUM, "", marked=False)
    assert "marking it done failed" in failed
    assert "accepted it" in sentence("pg1", OLD, 15, 0, "")
    other = sentence("pg1", OLD, 15, 103, "ERROR: [103]: unable to connect\n  to host")
    assert "exit 103" in other and "unable to connect to host" in other and "left as is" in other


def test_members_carry_their_timeline() -> None:
    members = members_from_dcs(
        {
            "/service/s/members/pg1": '{"role": "primary", "state": "running", "timeline": 15}',
            "/service/s/members/pg2": '{"role": "replica", "state": "starting"}',
        }
    )
    assert [(m.name, m.timeline) for m in members] == [("pg1", 15), ("pg2", None)]
