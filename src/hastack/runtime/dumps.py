"""Logical dumps, the second line behind the physical backups: `pg_dump --format=custom` of the
application database, piped into `gpg --symmetric` (AES-256, the repository's passphrase),
written under `<state>/dumps` (root only) as `<db>-<UTC time>.dump.gpg`, atomically (a
partial file never carries a dump's name). A dump survives what a physical backup cannot: a
major version upgrade, a move to another system, one table to recover by hand.

Restoring goes into a new, empty scratch instance (initdb) with the stack's roles created
first (the dump's grants and row-level security policies name them); the cluster is never
touched.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hastack.errors import HastackError
from hastack.runtime.files import ensure_dir
from hastack.runtime.scratch import Scratch
from hastack.spec import roles
from hastack.spec.plan import Node, StackPlan
from hastack.spec.secrets import Secrets
from hastack.tools.base import ToolError, ToolResult, run_pipeline
from hastack.tools.gpg import decrypt_argv, encrypt_argv
from hastack.tools.pg_dump import dump_argv, restore_argv

SUFFIX = ".dump.gpg"
NAME = re.compile(r"^(?P<db>[A-Za-z0-9_]+)-(?P<stamp>\d{8}T\d{6}Z)\.dump\.gpg$")
STAMP = "%Y%m%dT%H%M%SZ"
PASSPHRASE = "backup_cipher_pass"
SCRATCH_ROLES = (
    roles.OWNER,
    roles.APP,
    *roles.APP_LOGINS,
    roles.READONLY,
    roles.MONITOR,
    roles.REPLICATION,
    roles.REWIND,
)
"""Created (NOLOGIN) in the scratch instance before a restore: a dump names roles in its
ownership, grants and policies, and does not create them."""


@dataclass(frozen=True)
class DumpFile:
    name: str
    path: str
    size_bytes: int
    created_at: float
    """Epoch seconds, from the name."""


def dump_name(dbname: str, at: float) -> str:
    return f"{dbname}-{datetime.fromtimestamp(at, UTC).strftime(STAMP)}{SUFFIX}"


def parse_name(name: str) -> float | None:
    """The creation time a dump's name carries; None if it is not a dump's name."""
    found = NAME.match(name)
    if found is None:
        return None
    return datetime.strptime(found["stamp"], STAMP).replace(tzinfo=UTC).timestamp()


def list_dumps(plan: StackPlan) -> list[DumpFile]:
    """Dumps in the dumps directory, oldest first (only regular files with a dump's name)."""
    try:
        entries = list(os.scandir(plan.paths.dumps_dir))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        at = parse_name(entry.name)
        if at is None or not entry.is_file(follow_symlinks=False):
            continue
        size = entry.stat(follow_symlinks=False).st_size
        found.append(DumpFile(entry.name, entry.path, size, at))
    return sorted(found, key=lambda d: (d.created_at, d.name))


def expired(dumps: list[DumpFile], keep: int) -> list[DumpFile]:
    """The dumps beyond the newest `keep` (oldest first). Pure."""
    ordered = sorted(dumps, key=lambda d: (d.created_at, d.name))
    return ordered[: max(0, len(ordered) - keep)]


def remove(plan: StackPlan, dump: DumpFile) -> None:
    """Remove one dump (by name, in the root-only dumps directory)."""
    (plan.paths.dumps_dir / dump.name).unlink(missing_ok=True)


def _gpg_home(plan: StackPlan) -> Path:
    home = plan.paths.dumps_dir / ".gnupg"
    ensure_dir(plan.paths.dumps_dir, "root", 0o700)
    ensure_dir(home, "root", 0o700)
    return home


def take_dump(plan: StackPlan, secrets: Secrets, node: Node) -> DumpFile:
    """Dump the application database from `node` (its socket, as the superuser)."""
    home = _gpg_home(plan)
    dbname = plan.spec.postgres.database
    at = time.time()
    name = dump_name(dbname, at)
    final = plan.paths.dumps_dir / name
    partial = plan.paths.dumps_dir / f".{name}.partial"
    partial.unlink(missing_ok=True)
    dump = dump_argv(
        plan.postgres_bin_dir,
        node.paths.socket_dir,
        plan.spec.postgres.port,
        roles.SUPERUSER,
        dbname,
    )
    encrypt = encrypt_argv(home, plan.paths.secrets_dir / PASSPHRASE, partial)
    dumped, encrypted = run_pipeline(
        dump, encrypt, env_first={"PGPASSWORD": secrets.postgres_password}
    )
    if not (dumped.ok and encrypted.ok):
        partial.unlink(missing_ok=True)
        failed = _cause(dumped, encrypted)
        raise ToolError(f"the dump of {dbname} on {node.name} failed", failed, "hastack status")
    os.chmod(partial, 0o600)
    os.rename(partial, final)
    return DumpFile(name, str(final), final.stat().st_size, at)


def _cause(producer: ToolResult, consumer: ToolResult) -> ToolResult:
    """Which side of a pipeline failed first: a producer killed by SIGPIPE only lost its
    reader."""
    if not consumer.ok and (producer.ok or producer.returncode == -signal.SIGPIPE):
        return consumer
    return producer if not producer.ok else consumer


def resolve_dump(plan: StackPlan, given: str) -> Path:
    """A dump by its name (in the dumps directory) or its path; it must be a regular file
    with a dump's name."""
    path = Path(given)
    if path.name == given:
        path = plan.paths.dumps_dir / given
    if parse_name(path.name) is None:
        raise HastackError(
            f"{given!r} is not the name of a dump (<db>-<YYYYMMDDTHHMMSSZ>{SUFFIX})",
            "hastack dump list",
        )
    if path.is_symlink() or not path.is_file():
        raise HastackError(f"no dump file at {path}", "hastack dump list")
    return path


def restore_dump(plan: StackPlan, path: Path, scratch: Scratch) -> tuple[float, float]:
    """A new scratch instance with the dump restored into its application database:
    (seconds to create it, seconds to restore)."""
    created_s = scratch.create_empty(f"logical dump {path.name}")
    dbname = plan.spec.postgres.database
    with scratch.connect("postgres") as conn:
        for role in SCRATCH_ROLES:
            conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
        conn.execute(f'CREATE DATABASE "{dbname}" OWNER "{roles.OWNER}"')
    port = plan.spec.postgres.port
    socket = plan.paths.scratch_socket_dir
    decrypt = decrypt_argv(_gpg_home(plan), plan.paths.secrets_dir / PASSPHRASE, path)
    load = restore_argv(plan.postgres_bin_dir, socket, port, roles.SUPERUSER, dbname)
    t0 = time.monotonic()
    decrypted, loaded = run_pipeline(decrypt, load)
    if not loaded.ok and (decrypted.ok or decrypted.returncode == -signal.SIGPIPE):
        raise ToolError(
            f"pg_restore of {path.name} failed",
            loaded,
            "the scratch instance stays for a look: hastack restore --cleanup",
        )
    if not decrypted.ok:
        raise ToolError(
            f"{path.name} cannot be decrypted (a wrong passphrase, or the file was changed)",
            decrypted,
            "hastack dump list; the scratch instance stays for a look: hastack restore --cleanup",
        )
    if not loaded.ok:
        raise ToolError(
            f"pg_restore of {path.name} failed",
            loaded,
            "the scratch instance stays for a look: hastack restore --cleanup",
        )
    return created_s, round(time.monotonic() - t0, 2)
