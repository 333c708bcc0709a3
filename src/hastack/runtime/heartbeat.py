"""The watcher's heartbeat: written after every poll, read by `status`.

A watcher that runs but no longer completes a poll (an exception in every poll, a hung probe)
must not look healthy: supervisord would still call it RUNNING. The heartbeat says when the
last poll completed, how many failed and the last exception, and what the watcher is waiting
for (fenced nodes to return, programs backing off). `watcher_problems` turns it into the
sentences `status` shows. Pure apart from reading and writing the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STALE_AFTER_POLLS = 20
"""A heartbeat older than this many poll intervals (at least STALE_MIN_S) is stale."""
STALE_MIN_S = 10.0


@dataclass(frozen=True)
class Heartbeat:
    pid: int
    started_at: float
    """Wall-clock seconds (the watcher's start)."""
    last_poll_at: float | None
    """Wall-clock seconds of the last completed poll."""
    polls: int
    failed_polls: int
    last_error: str | None = None
    last_error_at: float | None = None
    poll_interval_s: float = 0.25
    leader: str | None = None
    supervisord: str = "running"
    """running, or gone (its programs run unsupervised; the watcher is recovering them)."""
    fenced: list[str] = field(default_factory=list)
    """Nodes fenced and not yet back as replicas."""
    waiting: list[dict[str, Any]] = field(default_factory=list)
    """Programs down and not started yet: process_name, sentence, next_try_in_s, failures."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Heartbeat:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


def write(path: Path, beat: Heartbeat) -> None:
    """Atomically (a reader never sees half a file); no fsync: it is rewritten every poll."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(beat.to_json())
    tmp.replace(path)


def read(path: Path) -> Heartbeat | None:
    try:
        return Heartbeat.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None


def watcher_problems(
    beat: Heartbeat | None, now: float, program_state: str | None, uptime_s: float
) -> list[str]:
    """What `status` reports about the watcher. `program_state`: supervisord's state of the
    watcher program (None when the stack has none); `uptime_s`: how long it has run."""
    if program_state is None or program_state != "RUNNING":
        return []  # a watcher that is not running is reported with the other programs
    if beat is None or beat.last_poll_at is None:
        if uptime_s < STALE_MIN_S:
            return []
        last = f" (last error: {beat.last_error})" if beat and beat.last_error else ""
        return [f"fencing watcher: running for {uptime_s:.0f} s without completing a poll{last}"]
    problems = []
    stale_after = max(STALE_MIN_S, STALE_AFTER_POLLS * beat.poll_interval_s)
    age = now - beat.last_poll_at
    if age > stale_after:
        last = f"; last error: {beat.last_error}" if beat.last_error else ""
        problems.append(
            f"fencing watcher: no poll completed for {age:.0f} s (it fences and heals "
            f"nothing meanwhile){last}; `hastack logs fencer`"
        )
    for entry in beat.waiting:
        if entry.get("failures"):
            again = entry.get("next_try_in_s")
            when = f"; next attempt in {again:.0f} s" if again is not None else ""
            problems.append(f"{entry['sentence']}{when}")
    return problems
