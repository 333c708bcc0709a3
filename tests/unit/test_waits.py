from __future__ import annotations

import pytest

from hastack.runtime.waits import WaitTimeout, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_returns_the_first_value() -> None:
    clock = FakeClock()
    calls = iter([(None, "a"), (None, "b"), ("done", "c")])
    result = wait_for(
        lambda: next(calls), what="x", timeout_s=10, interval_s=1, clock=clock, sleep=clock.sleep
    )
    assert result == "done"
    assert clock.now == 2


def test_timeout_reports_what_was_seen_last() -> None:
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as caught:
        wait_for(
            lambda: (None, f"seen at {clock.now:.0f}"),
            what="a leader",
            timeout_s=3,
            interval_s=1,
            clock=clock,
            sleep=clock.sleep,
        )
    assert "a leader: not reached within 3 s (last seen: seen at 3)" in str(caught.value)
