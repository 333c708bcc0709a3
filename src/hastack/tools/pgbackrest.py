"""pgBackRest: its command lines in one place, and what `info --output=json` says, typed."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hastack.tools.base import ToolError, ToolResult, run, run_checked


@dataclass(frozen=True)
class BackupSet:
    """One backup in the repository."""

    label: str
    type: str
    """full, diff or incr."""
    start: float
    """Epoch seconds the backup started."""
    stop: float
    """Epoch seconds it stopped: the earliest point it restores to."""
    size_bytes: int
    """The database's size at backup time."""
    repo_bytes: int
    """What this set added to the repository (compressed, encrypted)."""
    wal_start: str
    wal_stop: str
    lsn_start: str
    lsn_stop: str
    error: bool
    """A page checksum error was found while copying."""
    annotations: dict[str, str] = field(default_factory=dict)
    prior: str | None = None
    """The set a diff or incr builds on."""
    repo: int = 1
    """pgBackRest's repository holding it (1 local, 2 S3)."""

    @property
    def duration_s(self) -> float:
        return self.stop - self.start

    @property
    def verified_at(self) -> str | None:
        return self.annotations.get("verified_at")


OTHER_ERROR = 99
"""pgBackRest's stanza status "other": the repository could not be read."""


@dataclass(frozen=True)
class RepoStatus:
    key: int
    code: int
    """pgBackRest's: 0 ok, 1 missing stanza path, 2 no valid backup, 3 missing stanza data,
    99 other (cannot be read: unreachable, wrong passphrase)."""
    message: str


@dataclass(frozen=True)
class StanzaInfo:
    """`pgbackrest info` for one stanza."""

    name: str
    status_code: int
    status_message: str
    backup_running: bool
    backups: tuple[BackupSet, ...]
    wal_min: str | None
    """Oldest WAL segment in the archive (of the current database)."""
    wal_max: str | None
    """Newest archived WAL segment."""
    repo_message: str = ""
    """The repository's own status message (pgBackRest's error when it cannot be read)."""
    repos: tuple[RepoStatus, ...] = ()
    """Each repository's own status (two with backup.s3)."""

    def repo(self, key: int) -> RepoStatus:
        """One repository's status (the stanza's, when pgBackRest listed none)."""
        found = next((r for r in self.repos if r.key == key), None)
        return found or RepoStatus(key, self.status_code, self.status_message)

    @property
    def ok(self) -> bool:
        return self.status_code == 0

    @property
    def undecryptable(self) -> bool:
        """The info files decrypt to garbage (or not at all): the passphrase is not the one
        the repository was created with."""
        return self.status_code == OTHER_ERROR and any(
            e in self.repo_message for e in ("FormatError", "CryptoError")
        )

    def in_repo(self, repo: int) -> StanzaInfo:
        """The same, with only the backups one repository holds."""
        return replace(self, backups=tuple(b for b in self.backups if b.repo == repo))

    def last(self, *types: str) -> BackupSet | None:
        """The newest good backup of one of `types` (any type when none given)."""
        good = [b for b in self.backups if not b.error and (not types or b.type in types)]
        return max(good, key=lambda b: b.stop, default=None)


def _backup_set(raw: dict[str, Any]) -> BackupSet:
    info = raw.get("info", {})
    archive = raw.get("archive", {}) or {}
    lsn = raw.get("lsn", {}) or {}
    annotations = raw.get("annotation") or {}
    return BackupSet(
        label=raw["label"],
        type=raw["type"],
        start=float(raw["timestamp"]["start"]),
        stop=float(raw["timestamp"]["stop"]),
        size_bytes=int(info.get("size", 0)),
        repo_bytes=int(info.get("repository", {}).get("delta", 0)),
        wal_start=archive.get("start") or "",
        wal_stop=archive.get("stop") or "",
        lsn_start=lsn.get("start") or "",
        lsn_stop=lsn.get("stop") or "",
        error=bool(raw.get("error", False)),
        annotations={str(k): str(v) for k, v in annotations.items()},
        prior=raw.get("prior"),
        repo=int((raw.get("database") or {}).get("repo-key", 1)),
    )


def parse_info(text: str, stanza: str) -> StanzaInfo:
    """The stanza's entry of `pgbackrest info --output=json`. ValueError if it is not there
    or not pgBackRest's JSON."""
    try:
        # strict=False: a message may quote a file that decrypted to garbage (control bytes).
        entries = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise ValueError(f"pgbackrest info printed no JSON ({exc})") from None
    entry = next((e for e in entries if e.get("name") == stanza), None)
    if entry is None:
        raise ValueError(f"stanza {stanza!r} is not in pgbackrest info's output")
    status = entry.get("status", {})
    archives = entry.get("archive", [])
    # The current database's archive is the last entry (an upgrade adds one).
    current = archives[-1] if archives else {}
    return StanzaInfo(
        name=stanza,
        status_code=int(status.get("code", -1)),
        status_message=str(status.get("message", "")),
        backup_running=bool(status.get("lock", {}).get("backup", {}).get("held", False)),
        backups=tuple(_backup_set(b) for b in entry.get("backup", [])),
        wal_min=current.get("min"),
        wal_max=current.get("max"),
        repo_message=str(((entry.get("repo") or [{}])[0].get("status") or {}).get("message", "")),
        repos=tuple(
            RepoStatus(
                int(r.get("key", 1)),
                int((r.get("status") or {}).get("code", -1)),
                str((r.get("status") or {}).get("message", "")),
            )
            for r in entry.get("repo") or []
        ),
    )


_COUNTS = re.compile(r"(missing|checksum invalid|size invalid|other): (\d+)")


def parse_verify(text: str) -> list[str]:
    """What `pgbackrest verify --output=text` found wrong, one line per backup or WAL
    archive with a non-zero count; [] when it printed nothing or `status: ok`. (verify exits
    0 either way: its verdict is in its output.)"""
    if "status: error" not in text:
        return []
    lines = [ln.strip() for ln in text.splitlines()]
    found = []
    for header, detail in itertools.pairwise(lines):
        if not header.startswith(("backup:", "archiveId:")):
            continue
        bad = [f"{kind} {n}" for kind, n in _COUNTS.findall(detail) if n != "0"]
        if bad:
            found.append(f"{header.split(',')[0]}: {', '.join(bad)}")
    return found or ["status: error"]


@dataclass(frozen=True)
class PgBackRest:
    """pgBackRest with one config file, run as the user that owns what the config names."""

    binary: Path
    config: Path
    stanza: str
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    prefix: tuple[str, ...] = ()
    """Where it runs when not here: `docker exec ... CONTAINER` (a container deployment)."""

    def argv(self, command: str, *options: str) -> tuple[str, ...]:
        return (
            *self.prefix,
            str(self.binary),
            f"--config={self.config}",
            f"--stanza={self.stanza}",
            *options,
            command,
        )

    def run(self, command: str, *options: str, timeout_s: float = 600.0) -> ToolResult:
        return run(self.argv(command, *options), timeout_s=timeout_s, env=self.env, user=self.user)

    def checked(
        self, command: str, *options: str, timeout_s: float = 600.0, hint: str = ""
    ) -> ToolResult:
        return run_checked(
            self.argv(command, *options),
            f"pgbackrest {command} failed",
            hint,
            timeout_s=timeout_s,
            env=self.env,
            user=self.user,
        )

    def info(self, *options: str) -> StanzaInfo:
        # A short I/O timeout: an S3 repository that does not answer is reported in its
        # repository's status within seconds (60 s per attempt, four attempts, by default)
        # while the local one is read as usual.
        result = self.checked("info", "--output=json", "--io-timeout=3", *options, timeout_s=60)
        try:
            return parse_info(result.stdout, self.stanza)
        except ValueError as exc:
            raise ToolError(str(exc), result) from None

    def verify(self) -> list[str]:
        """Every file of the repository against its checksum: what is wrong ([] = nothing)."""
        result = self.checked("verify", "--output=text", timeout_s=3600)
        return parse_verify(result.stdout)

    def backup(
        self, backup_type: str, options: Sequence[str] = (), timeout_s: float = 3600.0
    ) -> ToolResult:
        return self.run("backup", f"--type={backup_type}", *options, timeout_s=timeout_s)
