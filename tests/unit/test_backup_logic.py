"""Backups, pure parts: what `pgbackrest info` says, which backup is due, which problems
`status` reports. The info JSON is pgBackRest 2.45's own (a stack's full + incr)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hastack.ops.backup import ArchiveState, backup_problems, segment_end_lsn
from hastack.runtime import backup_scheduler
from hastack.runtime.backup_scheduler import Schedule, SchedulerState, due, unverified_full
from hastack.spec.model import BackupSpec
from hastack.tools.pgbackrest import StanzaInfo, parse_info, parse_verify

INFO_JSON = (Path(__file__).parent / "data" / "pgbackrest_info.json").read_text()
HOUR = 3600.0
SCHEDULE = Schedule(full_every_s=168 * HOUR, diff_every_s=24 * HOUR, incr_every_s=HOUR)


def info() -> StanzaInfo:
    return parse_info(INFO_JSON, "hsdev")


def test_parse_info_reads_sets_archive_and_status() -> None:
    parsed = info()
    assert parsed.ok and not parsed.backup_running
    full, incr = parsed.backups
    assert (full.type, incr.type) == ("full", "incr")
    assert incr.prior == full.label
    assert full.size_bytes == 31216536 and full.repo_bytes == 3842896
    assert full.wal_start == "00000003000000000000000B"
    assert full.lsn_stop == "0/C000088"
    assert full.duration_s == 3
    assert parsed.wal_min == "000000010000000000000001"
    assert parsed.wal_max == "00000003000000000000000E"
    assert parsed.last("full") == full
    assert parsed.last() == incr
    assert parsed.last("diff") is None
    assert full.verified_at is None


def test_parse_info_refuses_other_stanzas_and_non_json() -> None:
    with pytest.raises(ValueError, match="stanza 'other' is not in"):
        parse_info(INFO_JSON, "other")
    with pytest.raises(ValueError, match="printed no JSON"):
        parse_info("ERROR: [041]: unable to open file", "hsdev")


def test_errored_backups_never_count_as_the_last_good_one() -> None:
    parsed = info()
    full, incr = parsed.backups
    broken = replace(parsed, backups=(full, replace(incr, error=True)))
    assert broken.last() == full


def _at(parsed: StanzaInfo, label_age_s: dict[str, float], now: float) -> StanzaInfo:
    """The same sets, stopped `age` seconds before `now`."""
    return replace(
        parsed,
        backups=tuple(replace(b, stop=now - label_age_s[b.type]) for b in parsed.backups),
    )


NOW = 2_000_000_000.0


@pytest.mark.parametrize(
    ("ages", "failed_ago", "expected", "sentence"),
    [
        ({"full": 60, "incr": 30}, None, None, "nothing due"),
        ({"full": 2 * HOUR, "incr": 1.5 * HOUR}, None, "incr", "the last backup is 90 min old"),
        ({"full": 25 * HOUR, "incr": 10}, None, "diff", "full or differential backup is 25.0 h"),
        ({"full": 169 * HOUR, "incr": 10}, None, "full", "the last full backup is 169.0 h old"),
        ({"full": 2 * HOUR, "incr": 1.5 * HOUR}, 30, None, "next attempt in 30 s"),
        ({"full": 2 * HOUR, "incr": 1.5 * HOUR}, 61, "incr", "the last backup is 90 min old"),
    ],
)
def test_due_picks_the_backup_the_schedule_asks_for(
    ages: dict[str, float], failed_ago: float | None, expected: str | None, sentence: str
) -> None:
    failed_at = None if failed_ago is None else NOW - failed_ago
    decision = due(_at(info(), ages, NOW), NOW, SCHEDULE, failed_at)
    assert decision.backup_type == expected
    assert sentence in decision.sentence


def test_due_takes_a_full_first_and_waits_for_a_running_backup() -> None:
    empty = replace(info(), backups=())
    assert due(empty, NOW, SCHEDULE).backup_type == "full"
    running = replace(empty, backup_running=True)
    assert due(running, NOW, SCHEDULE).sentence == "a backup is running"


def test_segment_end_lsn_from_wal_file_names() -> None:
    assert segment_end_lsn("00000003000000000000000B") == 0x0C000000
    assert segment_end_lsn("000000030000000100000002") == (1 << 32) + 3 * 16 * 1024 * 1024
    # a backup label names its segment; a history file names none
    assert segment_end_lsn("00000003000000000000000B.00000028.backup") == 0x0C000000
    assert segment_end_lsn("00000002.history") is None


def _archive(**changes: object) -> ArchiveState:
    base = ArchiveState(
        node="pg2",
        last_archived_wal="00000003000000000000000E",
        last_archived_at=NOW - 5,
        failed_count=0,
        last_failed_wal=None,
        last_failed_at=None,
        unarchived_bytes=0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_fresh_stack_with_its_first_backup_has_no_problem() -> None:
    fresh = _at(info(), {"full": 60, "incr": 30}, NOW)
    assert backup_problems(BackupSpec(), NOW, fresh, _archive(), {"consecutive_failures": 0}) == ()


def test_problems_name_what_is_missing_overdue_or_failing() -> None:
    spec = BackupSpec()
    empty = replace(info(), backups=())
    assert backup_problems(spec, NOW, empty, None, None) == (
        "backup: no full backup in the repository; `hastack backup`",
    )
    old = _at(info(), {"full": 200 * HOUR, "incr": 3 * HOUR}, NOW)
    problems = backup_problems(spec, NOW, old, None, None)
    assert "backup: the last full backup is overdue (200.0 h old)" in problems
    assert "backup: the newest backup is overdue (3.0 h old)" in problems
    failing = _archive(
        last_failed_wal="00000003000000000000000F", last_failed_at=NOW - 1, waiting=2
    )
    [problem] = backup_problems(spec, NOW, None, failing, None)
    assert "WAL archiving on pg2 is failing" in problem
    recovered = _archive(last_failed_at=NOW - 60, waiting=1)  # archived since it failed
    assert backup_problems(spec, NOW, None, recovered, None) == ()
    # The failed segment was marked done (a diverged copy) and nothing waits: not failing,
    # though no success has been counted since.
    unblocked = replace(failing, waiting=0)
    assert backup_problems(spec, NOW, None, unblocked, None) == ()
    scheduler = {"consecutive_failures": 3, "last_run_error": "ERROR: [056]: no primary"}
    [problem] = backup_problems(spec, NOW, None, None, scheduler)
    assert "the scheduler's last 3 backups failed" in problem
    assert "(ERROR: [056]: no primary)" in problem


def test_info_json_fixture_is_pgbackrests() -> None:
    assert json.loads(INFO_JSON)[0]["backup"][0]["backrest"]["version"] == "2.45"


def test_the_newest_full_backup_is_verified_once() -> None:
    parsed = info()
    full, incr = parsed.backups
    assert unverified_full(parsed) == full.label
    tried = replace(full, annotations={"verify": "failed", "verify_attempted_at": "x"})
    assert unverified_full(replace(parsed, backups=(tried, incr))) is None
    assert unverified_full(replace(parsed, backups=())) is None


def test_a_failed_verification_is_a_problem() -> None:
    parsed = info()
    full, incr = parsed.backups
    failed = replace(full, stop=NOW - 60, annotations={"verify": "failed"})
    fresh = replace(parsed, backups=(failed, replace(incr, stop=NOW - 30)))
    [problem] = backup_problems(BackupSpec(), NOW, fresh, None, None)
    assert f"the newest full backup {full.label} failed its verification" in problem


VERIFY_ERROR = """stanza: hstest
status: error
  archiveId: 15-1, total WAL checked: 63, total valid WAL: 63
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261127-165908F, status: invalid, total files checked: 1324, total valid files: 1323
    missing: 0, checksum invalid: 1, size invalid: 0, other: 0
"""


def test_verify_output_names_what_is_wrong() -> None:
    # pgbackrest verify exits 0 either way: the verdict is in what it prints
    assert parse_verify(VERIFY_ERROR) == ["backup: 20261127-165908F: checksum invalid 1"]
    assert parse_verify("") == []  # nothing printed: nothing wrong
    assert parse_verify(VERIFY_ERROR.replace("status: error", "status: ok")) == []
    assert parse_verify("stanza: x\nstatus: error\n") == ["status: error"]


def test_a_wrong_passphrase_is_never_taken_for_an_empty_repository() -> None:
    wrong = parse_info(
        (Path(__file__).parent / "data" / "pgbackrest_info_wrong_passphrase.json").read_text(),
        "demo",
    )
    assert wrong.undecryptable and not wrong.backups
    assert not info().undecryptable
    problems = backup_problems(BackupSpec(), NOW, wrong, None, None)
    assert len(problems) == 1 and "cannot be decrypted" in problems[0]  # not "no full backup"


def test_a_repository_without_room_for_another_full_backup_is_a_problem() -> None:
    fresh = _at(info(), {"full": 60, "incr": 30}, NOW)
    full = fresh.last("full")
    assert full is not None and full.repo_bytes > 0
    room = int(full.repo_bytes * 2)
    assert backup_problems(BackupSpec(), NOW, fresh, _archive(), None, room) == ()
    [problem] = backup_problems(BackupSpec(), NOW, fresh, _archive(), None, full.repo_bytes)
    assert "the repository's disk has" in problem and "the next full backup may fail" in problem


def test_a_full_disk_is_recognised_in_what_pgbackrest_says() -> None:
    from hastack.ops.backup import LOW_FREE, _out_of_space

    assert _out_of_space("ERROR: [039]: ... [28] No space left on device", None)
    worker = "ERROR: [064]: raised from local-2 protocol: unable to write '/repo/x.zst'"
    assert _out_of_space(worker, 1024)
    assert not _out_of_space(worker, LOW_FREE * 10)  # room enough: another cause
    assert not _out_of_space("ERROR: [056]: unable to find primary cluster", 0)


def _wrong_passphrase() -> StanzaInfo:
    return parse_info(
        (Path(__file__).parent / "data" / "pgbackrest_info_wrong_passphrase.json").read_text(),
        "demo",
    )


class _Repository:
    """What the scheduler reads of a repository (`info`) and asks of it (`backup`): the
    answers are pgBackRest's own JSON; each backup asked for is recorded, never run."""

    def __init__(self, info: StanzaInfo) -> None:
        self.answer = info
        self.asked: list[str] = []

    def info(self, *options: str) -> StanzaInfo:
        return self.answer

    def backup(self, backup_type: str, options: tuple[str, ...]) -> object:
        self.asked.append(backup_type)
        raise AssertionError("no backup may be taken here")


def test_the_scheduler_takes_nothing_over_a_repository_it_cannot_decrypt() -> None:
    repo = _Repository(_wrong_passphrase())
    state = backup_scheduler.poll(repo, SCHEDULE, SchedulerState())  # type: ignore[arg-type]
    assert repo.asked == []  # an empty-looking repository is not "a full backup is due"
    assert "cannot be decrypted" in state.last_decision
    assert state.consecutive_failures == 0


def test_earlier_failures_are_over_once_every_repository_has_what_is_due() -> None:
    failed = SchedulerState(failed_at=time.time() - 600, consecutive_failures=3)
    fresh = _Repository(_at(info(), {"full": 60, "incr": 30}, time.time()))
    state = backup_scheduler.poll(fresh, SCHEDULE, failed)  # type: ignore[arg-type]
    assert fresh.asked == [] and "nothing due" in state.last_decision
    assert state.consecutive_failures == 0 and state.failed_at is None
    # Waiting to retry keeps them, even when a backup someone else took looks fresh.
    recent = SchedulerState(failed_at=time.time() - 30, consecutive_failures=2)
    stale = _Repository(_at(info(), {"full": 30 * 24 * HOUR, "incr": 30 * 24 * HOUR}, time.time()))
    state = backup_scheduler.poll(stale, SCHEDULE, recent)  # type: ignore[arg-type]
    assert "next attempt" in state.last_decision and state.consecutive_failures == 2
    # So does a backup running: whether it works is not known yet.
    running = _Repository(replace(info(), backup_running=True))
    state = backup_scheduler.poll(running, SCHEDULE, SchedulerState(consecutive_failures=2))  # type: ignore[arg-type]
    assert state.consecutive_failures == 2
    # A repository it cannot decrypt keeps them: nothing says the cause is gone.
    failed = SchedulerState(failed_at=time.time() - 600, consecutive_failures=3)
    wrong = _Repository(_wrong_passphrase())
    state = backup_scheduler.poll(wrong, SCHEDULE, failed)  # type: ignore[arg-type]
    assert state.consecutive_failures == 3 and state.failed_at is not None
