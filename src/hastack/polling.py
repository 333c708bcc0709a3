"""Time, from one place, and the one way hastack waits: poll a check against a deadline.

Durations use a monotonic clock; the wall clock is for display only. Tests pass a fake clock
(`hastack.runtime.fakes.FakeClock`) so that waits run instantly and deterministically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar, overload

from hastack.errors import HastackError

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and deadlines)."""

    def wall(self) -> float:
        """Seconds since the epoch (for display and for files read by other processes)."""

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


@overload
def iso_utc(wall: float) -> str: ...
@overload
def iso_utc(wall: None) -> None: ...
@overload
def iso_utc(wall: float | None) -> str | None: ...


def iso_utc(wall: float | None) -> str | None:
    """Wall-clock seconds for display: ISO 8601 in UTC, to the second."""
    return None if wall is None else datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


class WaitTimeout(HastackError):
    """A condition was not met before its deadline; `last` says what was seen last."""

    def __init__(self, what: str, timeout_s: float, last: str, hint: str = "") -> None:
        self.waited_for = what
        self.timeout_s = timeout_s
        self.last = last
        super().__init__(f"{what}: not reached within {timeout_s:.0f} s (last seen: {last})", hint)


def poll(
    check: Callable[[], tuple[T | None, str]],
    *,
    what: str,
    timeout_s: float,
    interval_s: float = 0.2,
    hint: str = "",
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """Call `check` until it returns a value (not None) and return that value.

    `check` returns (value, description of what it saw); the last description goes into the
    WaitTimeout raised at the deadline, so a failed wait says what it was waiting for and
    what it saw instead."""
    deadline = clock.monotonic() + timeout_s
    while True:
        value, last = check()
        if value is not None:
            return value
        if clock.monotonic() >= deadline:
            raise WaitTimeout(what, timeout_s, last, hint)
        clock.sleep(interval_s)


def until(
    predicate: Callable[[], bool],
    *,
    what: str,
    timeout_s: float,
    interval_s: float = 0.2,
    hint: str = "",
    clock: Clock = SYSTEM_CLOCK,
) -> float:
    """Poll a yes/no condition; return the monotonic time at which it first held."""

    def check() -> tuple[float | None, str]:
        return (clock.monotonic(), "") if predicate() else (None, "not yet")

    return poll(
        check, what=what, timeout_s=timeout_s, interval_s=interval_s, hint=hint, clock=clock
    )


def sleep_until(t: float, clock: Clock = SYSTEM_CLOCK, step_s: float = 0.5) -> None:
    """Sleep until monotonic time `t` (in steps, so that a signal is handled promptly)."""
    while (left := t - clock.monotonic()) > 0:
        clock.sleep(min(left, step_s))
