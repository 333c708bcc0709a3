"""Named locks: two commands that must not overlap (two `up`s: an operator's and the one the
watcher runs after supervisord died) take turns instead of racing."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from hastack.errors import HastackError
from hastack.polling import SYSTEM_CLOCK, Clock, WaitTimeout, until
from hastack.runtime.progress import NullProgress, Progress

_held: set[Path] = set()
"""Locks this process holds: a nested `exclusive` of the same path passes through (a secret
rotation holds `up`'s lock across several `up`s, so that no other `up` runs in between)."""


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


@contextlib.contextmanager
def exclusive(
    path: Path,
    what: str,
    timeout_s: float,
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Iterator[None]:
    """Hold `path`'s lock for the block; wait up to `timeout_s` for another holder. Within a
    block that holds it already, the lock is simply still held."""
    progress = progress or NullProgress()
    if path in _held:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:

        def acquired() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not acquired():
            busy = f"another {what} (pid {_holder(path)}) is running"
            if timeout_s <= 0:
                raise HastackError(busy, "wait for it to finish, or stop it")
            progress.step(f"waiting: {busy}")
            try:
                until(
                    acquired,
                    what=f"the {what} lock",
                    timeout_s=timeout_s,
                    interval_s=0.5,
                    clock=clock,
                )
            except WaitTimeout:
                raise HastackError(
                    f"{busy}, still after {timeout_s:.0f} s", "wait for it to finish, or stop it"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _held.add(path)
        try:
            yield
        finally:
            _held.discard(path)
    finally:
        os.close(fd)
