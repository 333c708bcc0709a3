"""What a drill records: every acknowledged write, every error, every timeline mark.

All times are `time.monotonic()` seconds (one clock for every process on the machine, so the
fencing watcher's log lines up with the drill's). Thread-safe: writers, readers and the monitor
append from their own threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ack:
    """A write the database acknowledged (commit returned without error or warning)."""

    writer: str
    """url (DATABASE_URL, PgBouncer), direct (HAProxy, no pooler), transfer (a bank transfer
    through DATABASE_URL), pinned (a client stuck on the old primary's address)."""
    op_id: int
    t_start: float
    t_end: float
    node: str | None
    """The node that acknowledged it (from inet_server_addr())."""


@dataclass(frozen=True)
class Failure:
    writer: str
    op_id: int | None
    """The operation that failed (its outcome is unknown); None for a failed connect."""
    t: float
    sqlstate: str | None
    message: str


@dataclass(frozen=True)
class Mark:
    """A timeline event: fault, heal, leader key change, node role change, watcher decision."""

    t: float
    kind: str
    text: str
    node: str | None = None


@dataclass(frozen=True)
class RoleSample:
    """One direct probe of a node: what it answered and when (for the two-primaries check)."""

    node: str
    t_start: float
    t_end: float
    role: str
    """primary, replica or down."""


@dataclass
class History:
    acks: list[Ack] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    samples: list[RoleSample] = field(default_factory=list)
    reads_ok: int = 0
    reads_failed: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    """What a scenario measured for its own expectation (the overload's counters)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ack(self, ack: Ack) -> None:
        with self._lock:
            self.acks.append(ack)

    def fail(self, failure: Failure) -> None:
        with self._lock:
            self.failures.append(failure)

    def mark(self, kind: str, text: str, node: str | None = None, t: float | None = None) -> None:
        with self._lock:
            self.marks.append(Mark(time.monotonic() if t is None else t, kind, text, node))

    def sample(self, sample: RoleSample) -> None:
        with self._lock:
            self.samples.append(sample)

    def read(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.reads_ok += 1
            else:
                self.reads_failed += 1

    def acks_of(self, writer: str) -> list[Ack]:
        with self._lock:
            return sorted((a for a in self.acks if a.writer == writer), key=lambda a: a.t_end)

    def lost_sql_acks(self, lost_writes: set[int], lost_transfers: set[int]) -> list[Ack]:
        """The SQL writers' acknowledged operations the checker found missing."""
        with self._lock:
            return [
                a
                for a in self.acks
                if not a.writer.startswith("http-")
                and a.op_id in (lost_transfers if a.writer == "transfer" else lost_writes)
            ]

    def acks_of_prefix(self, prefix: str) -> list[Ack]:
        """Acks of every writer whose name starts with `prefix` (`http-post` for all the
        POST clients), by completion time."""
        with self._lock:
            acks = [a for a in self.acks if a.writer.startswith(prefix)]
        return sorted(acks, key=lambda a: a.t_end)
