"""Polling against a deadline, never fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    """A condition was not met before its deadline; `last` says what was seen last."""

    def __init__(self, what: str, timeout_s: float, last: str) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.last = last
        super().__init__(f"{what}: not reached within {timeout_s:.0f} s (last seen: {last})")


def wait_for(
    check: Callable[[], tuple[T | None, str]],
    *,
    what: str,
    timeout_s: float,
    interval_s: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `check` until it returns a value (not None). `check` returns (value, description of
    what it saw); the last description goes into the timeout error."""
    deadline = clock() + timeout_s
    last = "nothing yet"
    while True:
        value, last = check()
        if value is not None:
            return value
        if clock() >= deadline:
            raise WaitTimeout(what, timeout_s, last)
        sleep(interval_s)
