"""What `status` says about the watcher (its heartbeat) and the holds that make it stand still:
a watcher that stopped polling must not look healthy, and a hold whose holder is gone or whose
deadline passed must not freeze the watcher."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import psutil
import pytest

from hastack.runtime import holds
from hastack.runtime.fakes import FakeClock
from hastack.runtime.heartbeat import Heartbeat, watcher_problems
from hastack.runtime.holds import Hold, HoldView

NOW = 1_700_000_000.0
UNUSED_PID = 2**22 + 12_345
"""Past the largest pid_max Linux allows (2**22): no process can have it, the holder is gone."""
BEAT = Heartbeat(pid=42, started_at=NOW - 3600, last_poll_at=NOW - 0.3, polls=14400, failed_polls=0)


# --- heartbeat ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("poll_interval_s", "age_s", "stale"),
    [
        pytest.param(0.25, 0.3, False, id="fresh"),
        pytest.param(0.25, 9.5, False, id="under-the-10s-floor"),
        pytest.param(0.25, 11.0, True, id="past-the-10s-floor"),
        pytest.param(1.0, 15.0, False, id="slow-poll-within-20-intervals"),
        pytest.param(1.0, 21.0, True, id="slow-poll-past-20-intervals"),
    ],
)
def test_a_stale_heartbeat_is_reported_with_the_last_error(
    poll_interval_s: float, age_s: float, stale: bool
) -> None:
    beat = replace(
        BEAT,
        last_poll_at=NOW - age_s,
        poll_interval_s=poll_interval_s,
        failed_polls=30,
        last_error="ConnectionError: etcd unreachable",
    )
    problems = watcher_problems(beat, NOW, "RUNNING", uptime_s=3600)
    if not stale:
        assert problems == []
        return
    assert len(problems) == 1
    assert f"no poll completed for {age_s:.0f} s" in problems[0]
    assert "last error: ConnectionError: etcd unreachable" in problems[0]


@pytest.mark.parametrize(
    ("beat", "uptime_s", "reported"),
    [
        pytest.param(None, 5.0, False, id="just-started"),
        pytest.param(None, 11.0, True, id="no-heartbeat-file"),
        pytest.param(replace(BEAT, last_poll_at=None), 11.0, True, id="never-completed-a-poll"),
    ],
)
def test_a_running_watcher_that_never_completed_a_poll_is_reported(
    beat: Heartbeat | None, uptime_s: float, reported: bool
) -> None:
    problems = watcher_problems(beat, NOW, "RUNNING", uptime_s)
    assert bool(problems) is reported
    if reported:
        assert problems == [
            f"fencing watcher: running for {uptime_s:.0f} s without completing a poll"
        ]


def test_a_watcher_that_never_polled_reports_its_last_error() -> None:
    beat = replace(BEAT, last_poll_at=None, last_error="KeyError: 'nodes'")
    (problem,) = watcher_problems(beat, NOW, "RUNNING", uptime_s=30)
    assert problem.endswith("(last error: KeyError: 'nodes')")


@pytest.mark.parametrize("program_state", [None, "STOPPED", "FATAL", "BACKOFF", "STARTING"])
def test_a_watcher_not_running_is_left_to_the_program_report(program_state: str | None) -> None:
    stale = replace(BEAT, last_poll_at=NOW - 600, last_error="boom")
    assert watcher_problems(stale, NOW, program_state, uptime_s=600) == []
    assert watcher_problems(None, NOW, program_state, uptime_s=600) == []


def test_programs_backing_off_are_reported_but_plain_waits_are_not() -> None:
    waiting = [
        {"process_name": "pg2:pg2-etcd", "sentence": "pg2:pg2-etcd is stopped; starting it"},
        {
            "process_name": "pg1:pg1-patroni",
            "sentence": "pg1:pg1-patroni failed again 2 time(s) soon after a start: backing off",
            "next_try_in_s": 6.4,
            "failures": 2,
        },
        {
            "process_name": "haproxy:haproxy",
            "sentence": "haproxy:haproxy failed again 1 time(s)",
            "next_try_in_s": None,
            "failures": 1,
        },
    ]
    problems = watcher_problems(replace(BEAT, waiting=waiting), NOW, "RUNNING", uptime_s=60)
    assert problems == [
        "pg1:pg1-patroni failed again 2 time(s) soon after a start: backing off; "
        "next attempt in 6 s",
        "haproxy:haproxy failed again 1 time(s)",
    ]


def test_a_heartbeat_round_trips_through_json() -> None:
    beat = replace(BEAT, fenced=["pg1"], waiting=[{"process_name": "x", "failures": 1}])
    assert Heartbeat.from_json(beat.to_json()) == beat


# --- holds -------------------------------------------------------------------------------------


def holds_dir(tmp_path: Path) -> Path:
    """The watcher's holds directory; its parent exists as on a stack that was brought up."""
    return tmp_path / "holds"


def write_hold(directory: Path, **changes: object) -> Hold:
    """A hold on file as another hastack process would leave it; by default held by this
    process (alive) for 60 s from the fake clock's wall time."""
    clock = FakeClock()
    me = psutil.Process(os.getpid())
    fields: dict[str, object] = {
        "id": "1-2-abc",
        "reason": "switchover",
        "pid": me.pid,
        "pid_started": me.create_time(),
        "started_at": clock.wall(),
        "until": clock.wall() + 60,
        "scope": (),
    }
    entry = Hold(**{**fields, **changes})  # type: ignore[arg-type]
    directory.mkdir(exist_ok=True)
    (directory / f"{entry.id}.json").write_text(json.dumps(asdict(entry)))
    return entry


def test_a_hold_lasts_as_long_as_its_block(tmp_path: Path) -> None:
    directory = holds_dir(tmp_path)
    clock = FakeClock()
    with holds.hold(directory, 30, "up", clock=clock) as entry:
        assert entry is not None
        assert [p.name for p in directory.glob("*.json")] == [f"{entry.id}.json"]
        (view,) = holds.read(directory, clock.wall())
        assert view.honoured and view.hold == entry
        assert entry.until == clock.wall() + 30
    assert list(directory.glob("*.json")) == []
    assert holds.read(directory, clock.wall()) == []


def test_holds_nest(tmp_path: Path) -> None:
    # A switchover during `up` adds a second hold; ending it leaves `up`'s in place.
    directory = holds_dir(tmp_path)
    clock = FakeClock()
    with holds.hold(directory, 300, "up", clock=clock) as outer:
        clock.advance(1.0)
        with holds.hold(directory, 60, "switchover", clock=clock):
            views = holds.read(directory, clock.wall())
            assert [v.hold.reason for v in views] == ["up", "switchover"]
            assert all(v.honoured for v in views)
        (view,) = holds.read(directory, clock.wall())
        assert view.hold == outer and view.honoured


def test_a_stack_never_brought_up_needs_no_hold(tmp_path: Path) -> None:
    directory = tmp_path / "missing" / "holds"
    with holds.hold(directory, 30, "up", clock=FakeClock()) as entry:
        assert entry is None
    assert not directory.exists()


@pytest.mark.parametrize(
    ("changes", "alive", "expired"),
    [
        pytest.param({}, True, False, id="live-holder-in-time"),
        pytest.param({"pid": UNUSED_PID}, False, False, id="holder-gone"),
        pytest.param({"pid_started": 12.0}, False, False, id="pid-reused-by-another-process"),
        pytest.param({"until": FakeClock().wall()}, True, True, id="deadline-reached"),
        pytest.param({"until": FakeClock().wall() - 1}, True, True, id="expired"),
    ],
)
def test_a_hold_is_honoured_only_while_its_holder_runs_and_its_deadline_is_ahead(
    tmp_path: Path, changes: dict[str, object], alive: bool, expired: bool
) -> None:
    directory = holds_dir(tmp_path)
    write_hold(directory, **changes)
    (view,) = holds.read(directory, FakeClock().wall())
    assert (view.holder_alive, view.expired) == (alive, expired)
    assert view.honoured is (alive and not expired)


def test_prune_removes_exactly_the_holds_not_honoured(tmp_path: Path) -> None:
    directory = holds_dir(tmp_path)
    now = FakeClock().wall()
    kept = write_hold(directory, id="1-kept", reason="up")
    gone = write_hold(directory, id="2-gone", reason="drill", pid=UNUSED_PID)
    old = write_hold(directory, id="3-old", reason="restart", until=now - 5)
    removed = holds.prune(directory, now)
    assert sorted(h.id for h in removed) == sorted([gone.id, old.id])
    assert [p.stem for p in directory.glob("*.json")] == [kept.id]
    assert [v.hold for v in holds.read(directory, now)] == [kept]


def test_an_unreadable_hold_file_is_skipped(tmp_path: Path) -> None:
    directory = holds_dir(tmp_path)
    directory.mkdir()
    (directory / "broken.json").write_text("{not json")
    (directory / "odd.json").write_text(json.dumps({"id": "x"}))
    assert holds.read(directory, NOW) == []


@pytest.mark.parametrize(
    ("view", "sentence"),
    [
        pytest.param(
            HoldView(Hold("a", "switchover pg1 -> pg2", 7, 0.0, NOW, NOW + 42), True, False),
            "switchover pg1 -> pg2 (pid 7) holds everything, 42 s left",
            id="honoured",
        ),
        pytest.param(
            HoldView(
                Hold("a", "drill etcd-minority", 7, 0.0, NOW, NOW + 9, ("pg2:pg2-etcd",)),
                True,
                False,
            ),
            "drill etcd-minority (pid 7) holds pg2:pg2-etcd, 9 s left",
            id="scoped",
        ),
        pytest.param(
            HoldView(Hold("a", "up", 7, 0.0, NOW, NOW + 9), False, False),
            "up (pid 7): ignored, its holder is gone",
            id="holder-gone",
        ),
        pytest.param(
            HoldView(Hold("a", "restart", 7, 0.0, NOW - 90, NOW - 30), True, True),
            "restart (pid 7): ignored, it expired",
            id="expired",
        ),
    ],
)
def test_a_hold_sentence_names_its_reason_and_why_it_counts(view: HoldView, sentence: str) -> None:
    assert view.sentence(NOW) == sentence


@pytest.mark.parametrize(
    ("scope", "process_name", "covered"),
    [
        pytest.param((), "pg1:pg1-patroni", True, id="no-scope-covers-everything"),
        pytest.param(("pg2:pg2-etcd", "pg3:pg3-etcd"), "pg2:pg2-etcd", True, id="named"),
        pytest.param(("pg2:pg2-etcd", "pg3:pg3-etcd"), "pg1:pg1-etcd", False, id="not-named"),
        pytest.param(("pg2:pg2-etcd",), "pg2:pg2-patroni", False, id="same-node-other-program"),
    ],
)
def test_a_scoped_hold_covers_only_the_programs_it_names(
    scope: tuple[str, ...], process_name: str, covered: bool
) -> None:
    assert Hold("a", "drill", 7, 0.0, NOW, NOW + 60, scope).covers(process_name) is covered


def test_a_scope_survives_the_file(tmp_path: Path) -> None:
    directory = holds_dir(tmp_path)
    clock = FakeClock()
    scope = ["pg2:pg2-etcd", "pg3:pg3-etcd"]
    with holds.hold(directory, 30, "drill", scope=scope, clock=clock):
        (view,) = holds.read(directory, clock.wall())
    assert view.hold.scope == tuple(scope)
    assert view.hold.covers("pg3:pg3-etcd") and not view.hold.covers("pg1:pg1-etcd")


def test_release_all_removes_every_hold(tmp_path: Path) -> None:
    directory = holds_dir(tmp_path)
    write_hold(directory, id="1")
    write_hold(directory, id="2", pid=UNUSED_PID)
    assert holds.release_all(directory) == 2
    assert holds.read(directory, NOW) == []
    assert holds.release_all(tmp_path / "none") == 0
