"""The log lines hastack's own supervised programs write (the watcher, the backup scheduler,
the alert receiver): each stamped with its UTC time, so `hastack logs --all` can place it."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime


def stamped(text: str) -> str:
    return f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {text}"


def say(text: str) -> None:
    """A stamped line on stdout (supervisord's log of the program). When supervisord died,
    its pipe is gone: the program must go on (the watcher is what recovers supervisord)."""
    with contextlib.suppress(OSError, ValueError):
        print(stamped(text), flush=True)
