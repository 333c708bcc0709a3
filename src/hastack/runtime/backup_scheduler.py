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
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from hastack.errors import HastackError
from hastack.runtime.files import write_atomic
from hastack.runtime.logline import say
from hastack.runtime.scratch import ScratchBusy
from hastack.runtime.stack import Stack
from hastack.runtime.verify import verify_backup
from hastack.spec import StackSpec, derive_plan
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
    verify_after_full: bool = True


@dataclass(frozen=True)
class Due:
    backup_type: str | None
    """full, diff, incr, or None when nothing is due."""
    sentence: str
    satisfied: bool = False
    """The repository holds what the schedule asks (not merely waiting: a backup running,
    a retry after a failure)."""


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
    return Due(None, f"nothing due (last backup {last.label}, {_age(now, last.stop)} old)", True)


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
    last_verify_label: str | None = None
    last_verify_ok: bool | None = None
    last_verify_s: float | None = None
    last_verify_problems: list[str] = field(default_factory=list)
    last_backup_at: dict[str, float] = field(default_factory=dict)
    """Per repository (`repo1`, `repo2`): when its newest good backup ended, as read from it
    at the last poll (whoever took it: the scheduler, `up`, `hastack backup`)."""


@dataclass(frozen=True)
class SchedulerConfig:
    pgbackrest: str
    config: str
    stanza: str
    state_file: str
    poll_s: float
    schedule: Schedule
    spec: dict[str, Any]
    repos: tuple[int, ...] = (1,)
    """pgBackRest's repositories: 1 (local), 2 (S3, backup.s3). Each gets its own backups."""

    @classmethod
    def load(cls, path: Path) -> SchedulerConfig:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            **{
                **raw,
                "schedule": Schedule(**raw["schedule"]),
                "repos": tuple(raw.get("repos", (1,))),
            }
        )


def unverified_full(info: StanzaInfo) -> str | None:
    """The newest full backup, when it was never verified (nor tried). Pure."""
    full = info.last("full")
    if full is None or "verify" in full.annotations:
        return None
    return full.label


UNDECRYPTABLE = (
    "cannot be decrypted with this stack's passphrase: nothing taken until it is put back"
)


def poll(
    tool: PgBackRest,
    schedule: Schedule,
    state: SchedulerState,
    stack: Stack | None = None,
    repos: tuple[int, ...] = (1,),
) -> SchedulerState:
    """One round: for each repository, read it, decide, take the backup that is due (at
    most one backup per round); else verify the newest full backup of the local repository
    if it never was."""
    sentences = []
    all_satisfied = True
    for repo in repos:
        what = f"repo{repo}: " if len(repos) > 1 else ""
        now = time.time()
        options = (f"--repo={repo}",) if len(repos) > 1 else ()
        try:
            info = tool.info(*options)
        except ToolError as exc:
            sentences.append(f"{what}cannot read the repository: {exc.what}")
            all_satisfied = False
            continue
        if info.undecryptable:
            # Not an empty repository: nothing is taken over it, and no failure is
            # counted for what only the passphrase put back can mend.
            sentences.append(f"{what}{UNDECRYPTABLE}")
            all_satisfied = False
            continue
        newest = info.last()
        if newest is not None:
            state.last_backup_at[f"repo{repo}"] = newest.stop
        decision = due(info, now, schedule, state.failed_at)
        if decision.backup_type is not None:
            state.last_decision = "; ".join([*sentences, what + decision.sentence])
            return _take(tool, decision, state, now, options, what)
        sentences.append(what + decision.sentence)
        all_satisfied &= decision.satisfied
        label = unverified_full(info) if schedule.verify_after_full and repo == 1 else None
        if label is not None and stack is not None:
            state.last_decision = "; ".join(sentences)
            _verify(stack, label, state)
            return state
    if all_satisfied:
        # Every repository has what the schedule asks: earlier failures are over (the
        # cause was mended and someone took the backup, or it is no longer due). Not while
        # waiting to retry, nor while a backup runs: nothing says yet that it works.
        state.failed_at, state.consecutive_failures = None, 0
    state.last_decision = "; ".join(sentences)
    return state


def _take(
    tool: PgBackRest,
    decision: Due,
    state: SchedulerState,
    now: float,
    options: tuple[str, ...],
    what: str,
) -> SchedulerState:
    assert decision.backup_type is not None
    say(f"{what}taking a backup ({decision.backup_type}): {decision.sentence}")
    state.last_run_type, state.last_run_started_at = decision.backup_type, now
    result = tool.backup(decision.backup_type, options)
    state.last_run_duration_s = round(result.duration_s, 2)
    state.last_run_ok = result.ok
    if result.ok:
        state.failed_at, state.consecutive_failures, state.last_run_error = None, 0, None
        say(f"{decision.backup_type} backup done in {result.duration_s:.1f} s")
    else:
        state.failed_at = time.time()
        state.consecutive_failures += 1
        state.last_run_error = result.tail(5)
        say(f"{decision.backup_type} backup failed: {result.tail(5)}")
    return state


def _verify(stack: Stack, label: str, state: SchedulerState) -> None:
    say(f"verifying full backup {label}")
    try:
        result = verify_backup(stack, label)
    except ScratchBusy as exc:
        # Someone else's restore holds the instance: try again at a later poll.
        say(f"verification of {label} postponed: {exc.what}")
        return
    except HastackError as exc:
        problems = [exc.what]
        ok, took = False, None
    else:
        problems, ok, took = result.problems, result.ok, result.total_s
    state.last_verify_label, state.last_verify_ok = label, ok
    state.last_verify_s, state.last_verify_problems = took, problems
    say(f"backup {label}: " + ("verified" if ok else "FAILED: " + "; ".join(problems)))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m hastack.runtime.backup_scheduler CONFIG.json", file=sys.stderr)
        return 2
    config = SchedulerConfig.load(Path(argv[1]))
    tool = PgBackRest(Path(config.pgbackrest), Path(config.config), config.stanza)
    # This user's view of the stack: the repository host's pgBackRest and scratch instance.
    stack = Stack(derive_plan(StackSpec.model_validate(config.spec)))

    def stop(signum: int, frame: FrameType | None) -> None:
        # subprocess.run kills a running backup when this unwinds it.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    state = SchedulerState()
    say(f"backup scheduler for stanza {config.stanza}: polling every {config.poll_s:.0f} s")
    while True:
        state = poll(tool, config.schedule, state, stack, config.repos)
        state.updated_at = time.time()
        state_json = json.dumps(asdict(state), indent=2) + "\n"
        write_atomic(Path(config.state_file), state_json, stack.plan.service_users["backup"])
        time.sleep(config.poll_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
