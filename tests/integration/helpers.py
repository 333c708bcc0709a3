"""Polling helpers for integration tests: deadlines, never fixed sleeps (hastack's own
polling helper underneath)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hastack.polling import WaitTimeout, poll

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.2) -> T:
    """Return the first truthy value of `predicate`; fail with the last value at the deadline."""

    def check() -> tuple[T | None, str]:
        value = predicate()
        return (value if value else None), repr(value)

    try:
        return poll(check, what="condition", timeout_s=timeout_s, interval_s=interval_s)
    except WaitTimeout as exc:
        raise AssertionError(f"condition not met within {timeout_s} s (last: {exc.last})") from None
