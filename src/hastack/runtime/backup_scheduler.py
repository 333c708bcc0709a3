"""The backup scheduler: a supervised program on the repository host (its user).

Every poll it reads the repository (`pgbackrest info`), decides with `due()` whether a full,
differential or incremental backup is due, and takes it. pgBackRest backs up whichever node
is the leader at that moment, so a failover moves the backups with it; one that fails (no
leader during a failover) is retried after `retry_s`. What it did is kept in a small JSON
state file that `hastack status` reads.

Run: `python -m hastack.runtime.backup_scheduler CONFIG.json` (rendered by hastack).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from hastack.tools.base import ToolError
from hastack.tools.pgbackrest import PgBackRest, StanzaInfo

HOUR_S = 3600.0


@dataclass(frozen=True)
class Schedule:
    full_every_s: float
    diff_every_s: float
    incr_every_s: float
    retry_s: float = 60.0
    """After a failed backup, wait this long before the next attempt."""


@dataclass(frozen=True)
class Due:
    backup_type: str | None
    """full, diff, incr, or None when nothing is due."""
    sentence: str


def _age(now: float, stop: float) -> str:
    minutes = max(0.0, now - stop) / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def due(info: StanzaInfo, now: float, schedule: Schedule, failed_at: float | None = None) -> Due:
    """Which backup to take now, and why, in one sentence. Pure."""
    if info.backup_running:
        return Due(None, "a backup is running")
    if failed_at is not None and now - failed_at < schedule.retry_s:
        wait = schedule.retry_s - (now - failed_at)
        return Due(None, f"the last backup failed; next attempt in {wait:.0f} s")
    full = info.last("full")
    if full is None:
        return Due("full", "no full backup yet")
    if now - full.stop >= schedule.full_every_s:
        return Due("full", f"the last full backup is {_age(now, full.stop)} old")
    base = info.last("full", "diff")
    assert base is not None
    if now - base.stop >= schedule.diff_every_s:
        return Due("diff", f"the last full or differential backup is {_age(now, base.stop)} old")
    last = info.last()
    assert last is not None
    if now - last.stop >= schedule.incr_every_s:
        return Due("incr", f"the last backup is {_age(now, last.stop)} old")
    return Due(None, f"nothing due (last backup {last.label}, {_age(now, last.stop)} old)")


@dataclass
class SchedulerState:
    """What `status` shows of the scheduler; written after every poll."""

    updated_at: float = 0.0
    last_decision: str = ""
    last_run_type: str | None = None
    last_run_started_at: float | None = None
    last_run_duration_s: float | None = None
    last_run_ok: bool | None = None
    last_run_error: str | None = None
    failed_at: float | None = None
    consecutive_failures: int = 0


@dataclass(frozen=True)
class SchedulerConfig:
    pgbackrest: str
    config: str
    stanza: str
    state_file: str
    poll_s: float
    schedule: Schedule

    @classmethod
    def load(cls, path: Path) -> SchedulerConfig:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{**raw, "schedule": Schedule(**raw["schedule"])})


def _write_state(path: Path, state: SchedulerState) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def poll(tool: PgBackRest, schedule: Schedule, state: SchedulerState) -> SchedulerState:
    """One round: read the repository, decide, take the backup that is due."""
    now = time.time()
    try:
        info = tool.info()
    except ToolError as exc:
        state.last_decision = f"cannot read the repository: {exc.what}"
        return state
    decision = due(info, now, schedule, state.failed_at)
    state.last_decision = decision.sentence
    if decision.backup_type is None:
        return state
    print(f"taking a backup ({decision.backup_type}): {decision.sentence}", flush=True)
    state.last_run_type, state.last_run_started_at = decision.backup_type, now
    result = tool.backup(decision.backup_type)
    state.last_run_duration_s = round(result.duration_s, 2)
    state.last_run_ok = result.ok
    if result.ok:
        state.failed_at, state.consecutive_failures, state.last_run_error = None, 0, None
        print(f"{decision.backup_type} backup done in {result.duration_s:.1f} s", flush=True)
    else:
        state.failed_at = time.time()
        state.consecutive_failures += 1
        state.last_run_error = result.tail(5)
        print(f"{decision.backup_type} backup failed: {result.tail(5)}", flush=True)
    return state


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m hastack.runtime.backup_scheduler CONFIG.json", file=sys.stderr)
        return 2
    config = SchedulerConfig.load(Path(argv[1]))
    tool = PgBackRest(Path(config.pgbackrest), Path(config.config), config.stanza)

    def stop(signum: int, frame: FrameType | None) -> None:
        # subprocess.run kills a running backup when this unwinds it.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    state = SchedulerState()
    print(f"backup scheduler for stanza {config.stanza}: polling every {config.poll_s:.0f} s")
    while True:
        state = poll(tool, config.schedule, state)
        state.updated_at = time.time()
        _write_state(Path(config.state_file), state)
        time.sleep(config.poll_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
