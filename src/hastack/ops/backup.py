"""Backups: the stanza, taking one, listing them, and what `status` says of them.

pgBackRest does the work on the repository host (`Stack.pgbackrest()`); this module turns
its answers into data: sizes, durations, ages, the archive's lag, and problems in sentences.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from hastack.errors import HastackError, Unavailable
from hastack.polling import WaitTimeout, iso_utc
from hastack.runtime.cluster_restore import leftover_asides
from hastack.runtime.files import read_json_object
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack
from hastack.runtime.standby import is_standby
from hastack.spec.model import S3_REPO

if TYPE_CHECKING:
    from hastack.spec.model import BackupSpec
    from hastack.tools.pgbackrest import BackupSet, StanzaInfo

WAL_SEGMENT_BYTES = 16 * 1024 * 1024
GRACE_S = 3600.0
"""A backup is overdue this long after it was due (the scheduler retries every minute)."""


def require_backups(stack: Stack) -> None:
    if not stack.plan.backup_enabled:
        raise HastackError(
            f"stack {stack.name!r} has backups turned off (backup.enabled: false)",
            "set backup.enabled: true in the spec, then `hastack up`",
        )


STANZA_MISSING = (1, 3)
"""pgBackRest info status codes: 1 missing stanza path, 3 missing stanza data."""
STANZA_USABLE = (0, 2)
"""0 ok, 2 no valid backup yet."""


def _repo_name(key: int) -> str:
    return "S3 repository (repo2)" if key == S3_REPO else "backup repository"


def ensure_stanza(stack: Stack, progress: Progress | None = None) -> StanzaInfo:
    """Create the stanza when the repository has none, then check that WAL archiving
    reaches it (`pgbackrest check` switches a segment and waits for it). An existing stanza
    is left alone: a backup or check the scheduler runs holds its locks. What the
    repository holds afterwards."""
    require_backups(stack)
    progress = progress or NullProgress()
    tool = stack.pgbackrest()
    hint = "hastack logs backup-repo; hastack logs pg1 pgbackrest"
    info = tool.info()
    refuse_undecryptable(stack, info)
    statuses = [info.repo(key) for key in stack.plan.backup_repos]
    missing = [r for r in statuses if r.code in STANZA_MISSING]
    broken = [r for r in statuses if r.code not in STANZA_USABLE + STANZA_MISSING]
    if not missing and not broken:
        return info
    for r in broken:
        if r.key == S3_REPO and not missing:
            # The off-site copy is out of reach for now: archiving there waits (status says
            # so); the stack itself must still come up.
            progress.done(f"warning: the S3 repository cannot be read now: {r.message[:200]}")
            continue
        raise HastackError(
            f"the {_repo_name(r.key)} is not usable: {r.message or info.status_message} "
            f"(pgBackRest status {r.code})",
            hint
            if r.key == 1
            else "check backup.s3 (endpoint, port, bucket, region, uri_style, credentials_file) "
            "and that the bucket exists; docs/backups.md#a-second-repository-in-s3",
        )
    if not missing:
        return info
    progress.step("pgBackRest: stanza-create and check (a WAL segment reaches the repository)")
    tool.checked("stanza-create", timeout_s=120, hint=hint)
    tool.checked("check", timeout_s=120, hint=hint)
    return tool.info()


@dataclass(frozen=True)
class BackupRun:
    label: str
    type: str
    duration_s: float
    size_bytes: int
    repo_bytes: int
    wal_start: str
    wal_stop: str
    repo: int = 1

    @property
    def mb_per_s(self) -> float:
        return round(self.size_bytes / 1e6 / self.duration_s, 1) if self.duration_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mb_per_s": self.mb_per_s}


NO_SPACE = "No space left on device"
"""What pgBackRest passes on from the OS when the repository's filesystem is full."""

UNWRITABLE = re.compile(r"unable to write '([^']+)'")

LOW_FREE = 64 * 2**20
"""Below this, a failed write in the repository is taken for a full disk."""

FREE_SPACE_FACTOR = 1.2
"""The repository should have room for the last full backup again, with a margin."""


def _out_of_space(output: str, free_bytes: int | None) -> bool:
    """pgBackRest passes the OS's ENOSPC on only from some of its processes; from its
    parallel workers it says just "unable to write": then the disk itself tells."""
    if NO_SPACE in output:
        return True
    return "unable to write" in output and free_bytes is not None and free_bytes < LOW_FREE


def _written_dir(output: str) -> Path | None:
    """The directory of the file pgBackRest could not write (its filesystem is the one to
    look at: a repository may span mounts), the nearest that still exists."""
    found = UNWRITABLE.search(output)
    if found is None:
        return None
    path = Path(found.group(1)).parent
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _free_mb(path: Path) -> int | None:
    free = _free_bytes(path)
    return None if free is None else free // 2**20


def take_backup(
    stack: Stack, backup_type: str, progress: Progress | None = None, repo: int = 1
) -> BackupRun:
    """One backup now, from whichever node leads (pgBackRest finds it), into one repository
    (1: local, 2: S3). A diff or incr with no full backup yet becomes a full one
    (pgBackRest's rule), and says so."""
    require_backups(stack)
    available = stack.plan.backup_repos
    if repo not in available:
        raise HastackError(
            f"this stack has no repository {repo} (repositories: "
            f"{', '.join(map(str, available))}; 2 is the S3 one, when backup.s3 is set)",
            "hastack backup --repo 1",
        )
    progress = progress or NullProgress()
    tool = stack.pgbackrest()
    options = (f"--repo={repo}",) if len(available) > 1 else ()
    before = {b.label for b in tool.info().backups}
    article = "an" if backup_type == "incr" else "a"
    where = " into the S3 repository" if repo == S3_REPO else ""
    progress.step(f"taking {article} {backup_type} backup{where} (pgBackRest, from the leader)")
    result = tool.backup(backup_type, options)
    said = result.stdout + result.stderr
    written = _written_dir(said) or stack.plan.paths.backup_repo
    if not result.ok and repo == 1 and _out_of_space(said, _free_bytes(written)):
        raise HastackError(
            f"the backup repository's disk is full ({written}, {_free_mb(written)} MB free): the "
            f"{backup_type} backup was not taken; the earlier backups are intact",
            "free space on that filesystem, or keep fewer backups (backup.retention_full, "
            "retention_diff; the next backup expires the oldest); then `hastack backup`",
            result.tail().splitlines(),
        )
    if not result.ok:
        raise HastackError(
            f"the {backup_type} backup failed (pgbackrest exit {result.returncode})",
            "hastack status (is there a leader?); hastack logs backup-repo",
            result.tail().splitlines(),
        )
    new = [b for b in tool.info().backups if b.label not in before and b.repo == repo]
    if not new:
        raise HastackError(
            "pgbackrest backup succeeded but no new backup is in the repository",
            "hastack backups; hastack logs backup-repo",
        )
    backup = new[-1]
    progress.done(f"backup {backup.label} ({backup.type}) in {result.duration_s:.1f} s")
    return BackupRun(
        label=backup.label,
        type=backup.type,
        repo=backup.repo,
        duration_s=round(result.duration_s, 2),
        size_bytes=backup.size_bytes,
        repo_bytes=backup.repo_bytes,
        wal_start=backup.wal_start,
        wal_stop=backup.wal_stop,
    )


def ensure_first_backup(
    stack: Stack, info: StanzaInfo, progress: Progress | None = None
) -> BackupRun | None:
    """A stack whose repository (`info`) has no full backup takes one now (a fresh stack is
    small: seconds)."""
    require_backups(stack)
    if info.last("full") is not None or info.backup_running:
        return None
    return take_backup(stack, "full", progress)


# --- what the repository holds --------------------------------------------------------


def set_dict(b: BackupSet, now: float) -> dict[str, Any]:
    return {
        "label": b.label,
        "type": b.type,
        "repo": b.repo,
        "prior": b.prior,
        "started_at": iso_utc(b.start),
        "stopped_at": iso_utc(b.stop),
        "age_s": round(now - b.stop, 1),
        "duration_s": round(b.duration_s, 1),
        "size_bytes": b.size_bytes,
        "repo_bytes": b.repo_bytes,
        "wal_start": b.wal_start,
        "wal_stop": b.wal_stop,
        "lsn_start": b.lsn_start,
        "lsn_stop": b.lsn_stop,
        "error": b.error,
        "verified_at": b.verified_at,
    }


@dataclass(frozen=True)
class BackupsView:
    """`hastack backups`: every set, the archive, and the time range a restore can reach."""

    info: StanzaInfo
    now: float

    @property
    def restorable_from(self) -> float | None:
        """The oldest point a restore reaches: the end of the oldest good backup."""
        good = [b.stop for b in self.info.backups if not b.error]
        return min(good) if good else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stanza": self.info.name,
            "status": self.info.status_message,
            "backup_running": self.info.backup_running,
            "backups": [set_dict(b, self.now) for b in self.info.backups],
            "wal_archive": {"min": self.info.wal_min, "max": self.info.wal_max},
            "restorable": {
                "from": iso_utc(self.restorable_from),
                "to": "the newest archived WAL segment" if self.info.wal_max else None,
            },
        }


def list_backups(stack: Stack) -> BackupsView:
    require_backups(stack)
    info = stack.pgbackrest().info()
    refuse_undecryptable(stack, info)
    return BackupsView(info, stack.clock.wall())


UNDECRYPTABLE = (
    "the backup repository cannot be decrypted with this stack's passphrase (secret "
    "backup_cipher_pass): pgBackRest reads its files as garbage"
)


def refuse_undecryptable(stack: Stack, info: StanzaInfo) -> None:
    """A wrong passphrase is never taken for an empty repository: nothing is created,
    written or expired over it."""
    if info.undecryptable:
        raise HastackError(
            UNDECRYPTABLE,
            f"put back the passphrase the repository was created with "
            f"({stack.plan.paths.secrets_dir}/backup_cipher_pass), then `hastack up`; it is "
            "never rotated (docs/backups.md#what-runs-where)",
            [info.repo_message.splitlines()[0][:200]] if info.repo_message else [],
        )


# --- status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveState:
    """pg_stat_archiver on the leader, and how much WAL is not in the repository yet."""

    node: str
    last_archived_wal: str | None
    last_archived_at: float | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_at: float | None
    unarchived_bytes: int | None
    """WAL positions past the end of the last archived segment (None when the last file
    archived was not a segment: a timeline history file). Losing every node now loses the
    writes in them; `archive_timeout` bounds it while writes flow (a forced switch counts
    the rest of its segment, unused, too)."""
    waiting: int = 0
    """Files marked ready to archive (`archive_status/*.ready`) right now."""

    @property
    def failing(self) -> bool:
        """The last attempt failed and something still waits. A failure with nothing left
        waiting is over (the watcher marked a diverged segment done, and no segment has
        filled since for a success to be counted)."""
        return (
            self.waiting > 0
            and self.last_failed_at is not None
            and (self.last_archived_at is None or self.last_failed_at > self.last_archived_at)
        )

    @property
    def failure(self) -> str:
        return (
            f"WAL archiving on {self.node} is failing (last failed segment {self.last_failed_wal})"
        )


def segment_end_lsn(wal_name: str) -> int | None:
    """The LSN just past a WAL segment, from its file name (16 MiB segments); a backup
    label (`<segment>.<offset>.backup`) names its segment. None for a timeline history
    file (`00000002.history`) or anything else."""
    segment = wal_name[:24]
    if len(segment) != 24 or any(c not in "0123456789ABCDEF" for c in segment):
        return None
    log_id, seg = int(segment[8:16], 16), int(segment[16:24], 16)
    return (log_id << 32) + (seg + 1) * WAL_SEGMENT_BYTES


def archive_state(stack: Stack, leader: str) -> ArchiveState:
    """The WAL archive as the leader sees it. The leader named by a snapshot may have been
    demoted since (a failover under way): that, and a query cut short, is `Unavailable`,
    never an exception out of `status`."""
    try:
        with stack.connect(leader, connect_timeout_s=2) as conn:
            row = conn.execute(
                "SELECT last_archived_wal, extract(epoch FROM last_archived_time),"
                " failed_count, last_failed_wal, extract(epoch FROM last_failed_time),"
                " CASE WHEN pg_is_in_recovery() THEN NULL"
                " ELSE pg_current_wal_lsn() - '0/0'::pg_lsn END,"
                " (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')"
                " FROM pg_stat_archiver"
            ).fetchone()
    except psycopg.Error as exc:
        raise Unavailable(
            f"cannot read the WAL archive state on {leader}: {str(exc).strip()[:200]}",
            "hastack status (again, once the leader is settled)",
        ) from None
    assert row is not None
    wal, at, failed, failed_wal, failed_at, current, waiting = row
    if current is None:
        raise Unavailable(
            f"{leader} is in recovery: it is no longer the leader (a failover under way)",
            "hastack status (again, once the leader is settled)",
        )
    archived_end = segment_end_lsn(str(wal)) if wal else 0
    unarchived = None if archived_end is None else max(0, int(current) - archived_end)  # type: ignore[call-overload]
    return ArchiveState(
        node=leader,
        last_archived_wal=wal,  # type: ignore[arg-type]
        last_archived_at=float(at) if at is not None else None,  # type: ignore[arg-type]
        failed_count=int(failed),  # type: ignore[call-overload]
        last_failed_wal=failed_wal,  # type: ignore[arg-type]
        last_failed_at=float(failed_at) if failed_at is not None else None,  # type: ignore[arg-type]
        unarchived_bytes=unarchived,
        waiting=int(waiting),  # type: ignore[call-overload]
    )


def wait_archiving(
    stack: Stack,
    timeout_s: float,
    *,
    leader: str | None = None,
    give_up_at_failures: int | None = None,
) -> str | None:
    """Poll until WAL archiving on the leader (or on `leader`, when named) is not failing:
    None then (at once when backups are off), else what still fails at the deadline, or
    once the archiver's failure count reaches `give_up_at_failures`. Part of a healed stack:
    a failover can leave the new leader's archiver behind a diverged segment of an older
    timeline until the watcher marks it done (runtime/archive_unblock.py). A standby
    cluster archives nothing of its own: None."""
    # A leader named is one the caller found archiving (a standby cluster archives nothing).
    if not stack.plan.backup_enabled or (leader is None and is_standby(stack)):
        return None
    last = ["no leader to ask"]

    def check() -> tuple[bool | None, str]:
        member = leader or stack.leader()
        if member is None:
            return None, last[0]
        try:
            archive = archive_state(stack, member)
        except Unavailable as exc:
            last[0] = exc.what
            return None, last[0]
        if not archive.failing:
            return True, ""
        last[0] = archive.failure
        if give_up_at_failures is not None and archive.failed_count >= give_up_at_failures:
            return False, last[0]
        return None, last[0]

    try:
        fine = stack.wait(
            check, what="WAL archiving on the leader", timeout_s=timeout_s, interval_s=1.0
        )
    except WaitTimeout:
        return last[0]
    return None if fine else last[0]


ARCHIVE_PUSH_WAIT_S = 60
"""pgBackRest's archive-timeout (its default, kept): how long one asynchronous archive-push
waits for its segment to reach the repository before it fails."""


def resume_archiving(
    stack: Stack, progress: Progress, timeout_s: float = ARCHIVE_PUSH_WAIT_S + 30
) -> str | None:
    """When WAL archiving on the leader is failing, make its archiver try again now, then
    wait for it: None once it archives (or nothing failed), else what still fails.

    `up` runs after an operator fixed a cause (the passphrase put back, the repository's
    disk freed): the stack should be healthy when `up` says so. Two things delay that:
    - after three failed attempts PostgreSQL's archiver sleeps up to a minute. A
      configuration reload (`pg_reload_conf()`, a SIGHUP that PostgreSQL passes to its
      archiver) sets the archiver's latch, so it retries at once; the files it reloads are
      the ones Patroni already applied. Done over the superuser's socket: no process id is
      looked up or signalled by root;
    - an attempt under way runs to its end first. With a wrong passphrase pgBackRest
      2.45's asynchronous push crashes (the decrypted archive.info is garbage) and the
      attempt fails only at archive-timeout: hence the wait of a minute and more."""
    if not stack.plan.backup_enabled or is_standby(stack):
        return None
    leader = stack.leader()
    if leader is None:
        return None  # the stack's own checks say why
    try:
        archive = archive_state(stack, leader)
    except Unavailable:
        return None
    if not archive.failing:
        return None
    progress.step(
        f"{archive.failure}: waking its archiver to try again (an attempt under way may "
        f"first take up to {ARCHIVE_PUSH_WAIT_S} s)"
    )
    try:
        with stack.connect(leader, connect_timeout_s=2) as conn:
            conn.execute("SELECT pg_reload_conf()")
    except (psycopg.Error, Unavailable) as exc:
        still: str | None = f"cannot wake the archiver on {leader}: {str(exc).strip()[:200]}"
    else:
        # The attempt under way when it was woken accounts for one failure at most: a
        # second says the cause is still there (the S3 repository out of reach, a diverged
        # segment the watcher unblocks once `up` releases its hold). Give up then.
        still = wait_archiving(
            stack, timeout_s, leader=leader, give_up_at_failures=archive.failed_count + 2
        )
    if still is None:
        progress.done(f"WAL archiving on {leader} resumed")
    else:
        progress.done(f"warning: {still}; `hastack status` keeps saying so")
    return still


@dataclass(frozen=True)
class BackupStatus:
    """What `status` shows of backups: newest set of each type, the archive, the scheduler."""

    now: float
    info: StanzaInfo | None
    info_error: str | None
    archive: ArchiveState | None
    archive_error: str | None
    scheduler: dict[str, Any] | None
    problems: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        last = {}
        if self.info is not None:
            for kind in ("full", "diff", "incr"):
                b = self.info.last(kind)
                last[kind] = set_dict(b, self.now) if b else None
        return {
            "last": last,
            "repository_error": self.info_error,
            "backup_running": self.info.backup_running if self.info else None,
            "archive": None
            if self.archive is None
            else {
                **asdict(self.archive),
                "last_archived_at": iso_utc(self.archive.last_archived_at),
                "last_failed_at": iso_utc(self.archive.last_failed_at),
                "failing": self.archive.failing,
            },
            "archive_error": self.archive_error,
            "scheduler": self.scheduler,
            "problems": list(self.problems),
        }


def _repo_problems(spec: BackupSpec, now: float, held: StanzaInfo, repo: int) -> list[str]:
    """What is missing or overdue in one repository (`held`: its sets alone)."""
    hour = 3600.0
    state = held.repo(repo)
    if repo == S3_REPO and state.code not in (0, 2):
        return [
            f"backup: the S3 repository (repo2) cannot be read: {state.message[:200]}; "
            "WAL waits on the primary until it can (docs/backups.md#a-second-repository-in-s3)"
        ]
    problems = []
    where = "the repository" if repo == 1 else "the S3 repository (repo2)"
    of = "" if repo == 1 else " in S3"
    repo_full, last = held.last("full"), held.last()
    if repo_full is None:
        problems.append(
            f"backup: no full backup in {where}; `hastack backup"
            + ("`" if repo == 1 else " --repo 2`")
        )
    elif now - repo_full.stop > spec.schedule.full_every_h * hour + GRACE_S:
        age_h = (now - repo_full.stop) / hour
        problems.append(f"backup: the last full backup{of} is overdue ({age_h:.1f} h old)")
    if last is not None and now - last.stop > spec.schedule.incr_every_h * hour + GRACE_S:
        age_h = (now - last.stop) / hour
        problems.append(f"backup: the newest backup{of} is overdue ({age_h:.1f} h old)")
    return problems


def backup_problems(
    spec: BackupSpec,
    now: float,
    info: StanzaInfo | None,
    archive: ArchiveState | None,
    scheduler: dict[str, Any] | None,
    repo_free_bytes: int | None = None,
) -> tuple[str, ...]:
    """One sentence per problem: no or overdue backups, archiving failing, a scheduler that
    keeps failing, a repository without room for another full backup. Pure."""
    problems = []
    if info is not None and info.undecryptable:
        return (f"backup: {UNDECRYPTABLE}; `hastack backups` says what to do",)
    several = len(spec.repos) > 1
    # The local repository's newest full: what was verified, what the disk must hold again.
    full = (info.in_repo(1) if several else info).last("full") if info else None
    if info is not None:
        for repo in spec.repos:
            problems += _repo_problems(spec, now, info.in_repo(repo) if several else info, repo)
    if full is not None and full.annotations.get("verify") == "failed":
        problems.append(
            f"backup: the newest full backup {full.label} failed its verification; "
            f"`hastack verify-backup {full.label}`"
        )
    if (
        full is not None
        and repo_free_bytes is not None
        and repo_free_bytes < full.repo_bytes * FREE_SPACE_FACTOR
    ):
        problems.append(
            f"backup: the repository's disk has {repo_free_bytes // 2**20} MB free, less than "
            f"the last full backup took ({full.repo_bytes // 2**20} MB) with a margin: the "
            "next full backup may fail; free space or keep fewer (backup.retention_full)"
        )
    if archive is not None and archive.failing:
        problems.append(f"backup: {archive.failure}; `hastack logs {archive.node} postgres`")
    if scheduler is not None and int(scheduler.get("consecutive_failures") or 0) >= 2:
        error_lines = str(scheduler.get("last_run_error") or "").strip().splitlines()
        last_error = error_lines[-1].strip() if error_lines else "no output"
        problems.append(
            f"backup: the scheduler's last {scheduler['consecutive_failures']} backups failed "
            f"({last_error}); `hastack logs backup-scheduler`"
        )
    return tuple(problems)


def _scheduler_state(stack: Stack) -> dict[str, Any] | None:
    """The scheduler's state file (its user writes it: read without following a link,
    and at most 64 KiB)."""
    try:
        return read_json_object(stack.plan.paths.backup_scheduler_state)
    except OSError:
        return None


def backup_status(stack: Stack, leader: str | None) -> BackupStatus | None:
    """None when backups are off."""
    if not stack.plan.backup_enabled:
        return None
    now = stack.clock.wall()
    info = archive = None
    info_error = archive_error = None
    try:
        info = stack.pgbackrest().info()
    except HastackError as exc:
        info_error = exc.what
    if leader is not None:
        try:
            archive = archive_state(stack, leader)
        except Unavailable as exc:
            archive_error = exc.what
    else:
        archive_error = "no leader"
    scheduler = _scheduler_state(stack)
    problems = backup_problems(
        stack.plan.spec.backup,
        now,
        info,
        archive,
        scheduler,
        _free_bytes(stack.plan.paths.backup_repo),
    )
    if info_error:
        problems = (f"backup: cannot read the repository ({info_error})", *problems)
    aside = leftover_asides(stack)
    if aside:
        problems = (
            *problems,
            "restore: data set aside by a cluster restore that did not finish: "
            + ", ".join(aside)
            + " (see docs/backups.md#cluster-restore; remove it once the cluster is right)",
        )
    return BackupStatus(now, info, info_error, archive, archive_error, scheduler, problems)
