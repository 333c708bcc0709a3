"""Holds: hastack tells the watcher to stand still while it stops, starts or moves things.

Each hold is its own file under `<state>/fencing/holds/`, so holds nest: a switchover during
`up` adds a second hold and ending it leaves `up`'s in place. A hold names its reason, its
holder (pid and process start time) and a deadline. The watcher honours a hold only while its
holder runs and its deadline is ahead: a command killed with its hold in place does not freeze
the watcher, and `status` shows every hold with its reason.

A hold with a `scope` covers only the supervised programs it names (a drill that keeps two
etcd members down on purpose); the watcher keeps fencing and healing everything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets as random_source
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from hastack.polling import SYSTEM_CLOCK, Clock


@dataclass(frozen=True)
class Hold:
    id: str
    reason: str
    pid: int
    pid_started: float
    """The holder's process start time (psutil create_time), so a reused pid is not taken for
    the holder."""
    started_at: float
    """Wall-clock seconds."""
    until: float
    """Wall-clock seconds."""
    scope: tuple[str, ...] = ()
    """Supervisor process names (`pg2:pg2-etcd`) the hold covers; empty: everything."""
    persistent: bool = False
    """Honoured until its file is removed, whoever wrote it (a cluster restore that did not
    finish: started again, Patroni would create a new, empty cluster)."""

    def covers(self, process_name: str) -> bool:
        return not self.scope or process_name in self.scope


@dataclass(frozen=True)
class HoldView:
    hold: Hold
    holder_alive: bool
    expired: bool

    @property
    def honoured(self) -> bool:
        return self.holder_alive and not self.expired

    def sentence(self, now: float) -> str:
        h = self.hold
        what = "everything" if not h.scope else ", ".join(h.scope)
        if h.persistent:
            return f"{h.reason}: holds {what} until {h.id}.json is removed"
        if self.honoured:
            return f"{h.reason} (pid {h.pid}) holds {what}, {h.until - now:.0f} s left"
        why = "its holder is gone" if not self.holder_alive else "it expired"
        return f"{h.reason} (pid {h.pid}): ignored, {why}"


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(hold: Hold) -> bool:
    if hold.persistent:
        return True
    started = _process_started(hold.pid)
    return started is not None and abs(started - hold.pid_started) < 1.0


def read(directory: Path, now: float) -> list[HoldView]:
    """Every hold on file, oldest first, with whether the watcher honours it."""
    views = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            hold = Hold(**{**data, "scope": tuple(data.get("scope", ()))})
        except (OSError, ValueError, TypeError):
            continue
        views.append(HoldView(hold, _alive(hold), hold.until <= now and not hold.persistent))
    return sorted(views, key=lambda v: v.hold.started_at)


def prune(directory: Path, now: float) -> list[Hold]:
    """Remove holds that are no longer honoured; return them."""
    removed = []
    for view in read(directory, now):
        if not view.honoured:
            (directory / f"{view.hold.id}.json").unlink(missing_ok=True)
            removed.append(view.hold)
    return removed


@contextlib.contextmanager
def hold(
    directory: Path,
    seconds: float,
    reason: str,
    scope: Sequence[str] = (),
    clock: Clock = SYSTEM_CLOCK,
) -> Iterator[Hold | None]:
    """Hold the watcher for at most `seconds` while the block runs. A stack without a
    watcher directory (never brought up) needs no hold."""
    if not directory.parent.is_dir():
        yield None
        return
    directory.mkdir(mode=0o700, exist_ok=True)
    now = clock.wall()
    pid = os.getpid()
    entry = Hold(
        id=f"{int(now * 1000)}-{pid}-{random_source.token_hex(3)}",
        reason=reason,
        pid=pid,
        pid_started=_process_started(pid) or 0.0,
        started_at=now,
        until=now + seconds,
        scope=tuple(scope),
    )
    path = directory / f"{entry.id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(entry)))
    tmp.replace(path)
    try:
        yield entry
    finally:
        path.unlink(missing_ok=True)


PERSISTENT_PREFIX = "persistent-"


def place_persistent(directory: Path, name: str, reason: str, scope: Sequence[str]) -> Path:
    """A hold that stays until `remove_persistent` (or the operator deletes its file)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    now = SYSTEM_CLOCK.wall()
    entry = Hold(
        id=f"{PERSISTENT_PREFIX}{name}",
        reason=reason,
        pid=0,
        pid_started=0.0,
        started_at=now,
        until=now + 100 * 365 * 86400.0,  # finite: status prints it as JSON
        scope=tuple(scope),
        persistent=True,
    )
    path = directory / f"{entry.id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(entry)))
    tmp.replace(path)
    return path


def persistent(directory: Path, name: str) -> Path | None:
    path = directory / f"{PERSISTENT_PREFIX}{name}.json"
    return path if path.is_file() else None


def remove_persistent(directory: Path, name: str) -> None:
    (directory / f"{PERSISTENT_PREFIX}{name}.json").unlink(missing_ok=True)


def release_all(directory: Path) -> int:
    """Remove every hold but the persistent ones (`hastack drill cleanup`); how many."""
    paths = [
        p
        for p in (directory.glob("*.json") if directory.is_dir() else [])
        if not p.name.startswith(PERSISTENT_PREFIX)
    ]
    for path in paths:
        path.unlink(missing_ok=True)
    return len(paths)
