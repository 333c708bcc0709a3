"""The one polling helper: the first value wins, a deadline names what was seen last."""

from __future__ import annotations

import pytest

from hastack.errors import HastackError
from hastack.polling import WaitTimeout, poll, sleep_until, until
from hastack.runtime.fakes import FakeClock


def test_returns_the_first_value() -> None:
    clock = FakeClock(start=0.0)
    calls = iter([(None, "a"), (None, "b"), ("done", "c")])
    result = poll(lambda: next(calls), what="x", timeout_s=10, interval_s=1, clock=clock)
    assert result == "done"
    assert clock.now == 2


def test_timeout_reports_what_was_seen_last_and_what_to_do() -> None:
    clock = FakeClock(start=0.0)
    with pytest.raises(WaitTimeout) as caught:
        poll(
            lambda: (None, f"seen at {clock.now:.0f}"),
            what="a leader",
            timeout_s=3,
            interval_s=1,
            hint="hastack logs pg1",
            clock=clock,
        )
    assert isinstance(caught.value, HastackError)
    assert caught.value.what == "a leader: not reached within 3 s (last seen: seen at 3)"
    assert caught.value.hint == "hastack logs pg1"


def test_until_returns_when_the_condition_first_held() -> None:
    clock = FakeClock(start=0.0)
    assert (
        until(lambda: clock.now >= 1.5, what="x", timeout_s=5, interval_s=0.5, clock=clock) == 1.5
    )


def test_sleep_until_sleeps_in_steps_and_never_past_the_time() -> None:
    clock = FakeClock(start=0.0)
    sleep_until(1.2, clock, step_s=0.5)
    assert clock.now == pytest.approx(1.2)
    assert clock.sleeps == [0.5, 0.5, pytest.approx(0.2)]
