"""The scratch instance: a backup restored on the repository host, started as a plain
PostgreSQL (no Patroni) on the repository host's address, as the repository user.

A restored data directory is a copy of a Patroni node's: its postgresql.conf names that
node's port, socket and log directories, its certificate, `archive_mode = on` into the
cluster's own stanza and a synchronous standby that will never connect (every commit would
hang). Each of those is overridden on the command line (`scratch_settings`), the restore
turns archiving off, and the restore target's action is `promote` (pgBackRest's default
pauses at the target, read-only).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from hastack.errors import HastackError
from hastack.render.pgbackrest import restore_options
from hastack.runtime.files import (
    ensure_dir,
    open_nofollow,
    read_json_object,
    read_regular,
    uid_gid,
    write_atomic,
)
from hastack.runtime.hostlab import unit_netns
from hastack.spec import roles
from hastack.spec.placement import BACKUP
from hastack.spec.plan import StackPlan
from hastack.tools.base import ToolError, ToolResult, run
from hastack.tools.pg_amcheck import PgAmcheck
from hastack.tools.pg_ctl import PgCtl
from hastack.tools.pgbackrest import PgBackRest


class ScratchBusy(HastackError):
    """Another restore or verification holds the scratch instance: nothing was tried (not a
    verdict on any backup)."""


TEMPORARY_MAX_S = 900.0
"""How long a restore waits for a verification to give the scratch instance back (and how
old a verification's claim may be to be waited for: an older one was left by a crash)."""

SCRATCH_HBA = """\
# hastack scratch instance: the socket directory is the repository user's (0700), so only
# it and root reach the socket; over TCP, the roles' passwords as of the backup, with TLS.
local all all trust
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all {address}/32 scram-sha-256
"""


def scratch_settings(plan: StackPlan) -> dict[str, str]:
    """What the scratch server runs with instead of the restored node's settings."""
    paths = plan.paths
    scratch = paths.backup_scratch_dir
    return {
        "port": str(plan.scratch_port),
        "listen_addresses": plan.backup_address,
        "unix_socket_directories": str(paths.scratch_socket_dir),
        "hba_file": str(scratch / "pg_hba.conf"),
        "ident_file": str(scratch / "pg_ident.conf"),
        "ssl_cert_file": str(paths.backup_tls_cert),
        "ssl_key_file": str(paths.backup_tls_key),
        "synchronous_standby_names": "",
        "archive_mode": "off",
        "archive_command": "",
        "cluster_name": f"{plan.name}-scratch",
        "logging_collector": "off",
    }


@dataclass(frozen=True)
class ScratchRestore:
    target: str
    restore_s: float
    start_s: float
    promote_s: float
    pgdata: str
    url: str
    """The superuser's DSN over TLS (its password as of the backup)."""
    socket_dir: str

    @property
    def total_s(self) -> float:
        return round(self.restore_s + self.start_s + self.promote_s, 2)


class Scratch:
    """The one scratch instance of a stack."""

    def __init__(self, plan: StackPlan) -> None:
        self.plan = plan
        self.token: str | None = None
        self.temporary = False
        """A use that removes the instance itself when done (a verification): another
        restore waits for it instead of being refused."""
        self.on_wait: Callable[[str], None] | None = None
        """Told once when a restore waits for a verification to finish."""
        self.user = plan.service_users["backup"]
        # In the lab, it binds the repository host's address: it runs in that host.
        self.pg_ctl = PgCtl(plan.postgres_bin_dir, self.user, unit_netns(plan, BACKUP))
        paths = plan.paths
        self.tool = PgBackRest(
            plan.spec.binaries.pgbackrest,
            paths.backup_restore_config,
            plan.stanza,
            user=self.user,
            env={"HOME": str(paths.backup_dir)},
        )

    @property
    def log_file(self) -> Path:
        return self.plan.paths.backup_scratch_dir / "postgresql.log"

    def exists(self) -> bool:
        return self.plan.paths.scratch_marker.exists()

    def running(self) -> bool:
        return self.pg_ctl.status(self.plan.paths.scratch_pgdata).returncode == 0

    def url(self, dbname: str) -> str:
        plan = self.plan
        return (
            f"postgresql://{roles.SUPERUSER}@{plan.backup_address}:{plan.scratch_port}/"
            f"{dbname}?sslmode=verify-full&sslrootcert={plan.paths.ca_cert}"
        )

    def connect(self, dbname: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.plan.paths.scratch_socket_dir),
            port=self.plan.scratch_port,
            dbname=dbname or self.plan.spec.postgres.database,
            user=roles.SUPERUSER,
            connect_timeout=3,
            autocommit=True,
        )

    def restore(
        self,
        kind: str,
        target: str | None,
        description: str,
        set_label: str | None = None,
        temporary: bool = False,
    ) -> ScratchRestore:
        """Restore to the target into an empty scratch directory, start it, wait until it
        has promoted (reached the target). Refuses while a scratch instance exists."""
        paths = self.plan.paths
        self.temporary = temporary
        self._begin(description)
        t0 = time.monotonic()
        options = restore_options(kind, target, set_label)
        result = self.tool.run("restore", *options, timeout_s=3600)
        if not result.ok:
            raise ToolError(
                f"the restore to {description} failed", result, "hastack backups (what exists)"
            )
        t1 = time.monotonic()
        started = self.pg_ctl.start(
            paths.scratch_pgdata, self.log_file, scratch_settings(self.plan)
        )
        t2 = time.monotonic()
        if not started.ok:
            raise ToolError(
                f"the restored instance did not start (log: {self.log_file})",
                started,
                self._log_hint(),
            )
        self._wait_promoted(description)
        t3 = time.monotonic()
        return ScratchRestore(
            target=description,
            restore_s=round(t1 - t0, 2),
            start_s=round(t2 - t1, 2),
            promote_s=round(t3 - t2, 2),
            pgdata=str(paths.scratch_pgdata),
            url=self.url(self.plan.spec.postgres.database),
            socket_dir=str(paths.scratch_socket_dir),
        )

    def create_empty(self, description: str) -> float:
        """A new, empty instance (initdb) in the scratch directory, started: the target of
        a logical dump's restore. Seconds it took. Refuses while a scratch instance exists."""
        paths = self.plan.paths
        self._begin(description)
        t0 = time.monotonic()
        initdb = [
            str(self.plan.postgres_bin_dir / "initdb"),
            f"--pgdata={paths.scratch_pgdata}",
            f"--username={roles.SUPERUSER}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
        made = run(initdb, timeout_s=300, user=self.user, env={"HOME": str(paths.backup_dir)})
        if not made.ok:
            raise ToolError("initdb of the scratch instance failed", made)
        settings = {**scratch_settings(self.plan), "ssl": "on"}
        started = self.pg_ctl.start(paths.scratch_pgdata, self.log_file, settings)
        if not started.ok:
            raise ToolError(
                f"the scratch instance did not start (log: {self.log_file})",
                started,
                self._log_hint(),
            )
        return round(time.monotonic() - t0, 2)

    def _begin(self, description: str) -> None:
        """Refuse while a scratch instance exists; its directories, the marker claimed, the
        access rules written (the instance reads them from the scratch directory, not from
        its data directory)."""
        paths = self.plan.paths
        self.wait_until_free()
        ensure_dir(paths.backup_scratch_dir, self.user, 0o700)
        ensure_dir(paths.scratch_socket_dir, self.user, 0o700)
        self._claim(description)
        hba = SCRATCH_HBA.format(address=self.plan.backup_address)
        write_atomic(paths.backup_scratch_dir / "pg_hba.conf", hba, self.user, 0o600)
        write_atomic(paths.backup_scratch_dir / "pg_ident.conf", "", self.user, 0o600)

    def wait_until_free(self) -> None:
        """Wait for a verification holding the instance, then refuse (ScratchBusy) while
        anything else does."""
        self.wait_for_a_verification()
        pgdata = self.plan.paths.scratch_pgdata
        if self.exists() or pgdata.exists():
            raise ScratchBusy(
                f"a scratch instance already exists ({pgdata})",
                "look at it, then `hastack restore --cleanup`",
            )

    def wait_for_a_verification(self) -> None:
        """A verification (the scheduler's after each full backup, `verify-backup`) holds the
        instance for a minute or so and removes it: wait for it rather than refuse."""
        deadline = time.monotonic() + TEMPORARY_MAX_S
        told = False
        while time.monotonic() < deadline:
            marker = self._marker()
            fresh = (
                marker is not None and time.time() - marker.get("created_at", 0) < TEMPORARY_MAX_S
            )
            if not (marker and marker.get("temporary") and fresh):
                return
            if not told and self.on_wait is not None:
                self.on_wait(
                    f"waiting for the scratch instance: {marker.get('target')} in progress"
                )
                told = True
            time.sleep(1.0)

    def _marker(self) -> dict[str, Any] | None:
        return read_json_object(self.plan.paths.scratch_marker, 4096)

    def _claim(self, description: str) -> None:
        """Create the marker, exclusively: of two restores (a verification by the scheduler,
        one by the CLI) only one gets the scratch instance; the other is told it is busy."""
        paths = self.plan.paths
        self.token = secrets.token_hex(8)
        marker = {
            "target": description,
            "created_at": time.time(),
            "token": self.token,
            "temporary": self.temporary,
        }
        try:
            fd = open_nofollow(paths.scratch_marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            raise ScratchBusy(
                "the scratch instance is in use (a restore or a verification)",
                "wait, or look at it and `hastack restore --cleanup`",
            ) from None
        uid, gid = uid_gid(self.user)
        with os.fdopen(fd, "w") as handle:
            os.fchown(handle.fileno(), uid, gid)
            handle.write(json.dumps(marker) + "\n")

    def mine(self) -> bool:
        """The scratch instance is the one this object restored."""
        marker = self._marker()
        return marker is not None and self.token is not None and marker.get("token") == self.token

    def _log_hint(self) -> str:
        return f"tail {self.log_file}"

    def _wait_promoted(self, description: str, timeout_s: float = 600) -> None:
        """Until recovery has reached the target and promoted. Recovery that ends before
        the target (WAL not archived yet) shuts the server down: reported, with its log."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                with self.connect("postgres") as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and row[0] is False:
                    return
                last = "still recovering"
            except psycopg.OperationalError as exc:
                last = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
                if not self.running():
                    raise HastackError(
                        f"the restored instance stopped before reaching {description}",
                        f"{self._log_hint()} (a target newer than the archived WAL ends "
                        "recovery early: `hastack backups` shows the newest segment)",
                        self._log_tail(),
                    ) from None
            time.sleep(0.2)
        raise HastackError(
            f"the restored instance did not promote within {timeout_s:.0f} s: {last}"
        )

    def _log_tail(self, lines: int = 8) -> list[str]:
        raw = read_regular(self.log_file)
        return [] if raw is None else raw.decode(errors="replace").splitlines()[-lines:]

    def amcheck(self) -> ToolResult:
        """pg_amcheck --heapallindexed over every database of the running instance."""
        checker = PgAmcheck(self.plan.postgres_bin_dir, self.user)
        return checker.check_all(
            str(self.plan.paths.scratch_socket_dir), self.plan.scratch_port, roles.SUPERUSER
        )

    def cleanup(self, only_mine: bool = False) -> bool:
        """Stop the scratch instance and remove its directory. False if there was none (or,
        `only_mine`, if another restore holds it)."""
        paths = self.plan.paths
        if only_mine and not self.mine():
            return False
        if not self.exists():
            if paths.scratch_pgdata.exists():
                raise HastackError(
                    f"{paths.scratch_pgdata} exists but hastack did not restore into it "
                    f"(no {paths.scratch_marker.name}): left alone",
                    "remove it by hand if it is yours to remove",
                )
            return False
        if self.running():
            stopped = self.pg_ctl.stop(paths.scratch_pgdata)
            if not stopped.ok:
                raise ToolError("the scratch instance did not stop", stopped)
        shutil.rmtree(paths.scratch_pgdata, ignore_errors=True)
        for name in ("pg_hba.conf", "pg_ident.conf", "postgresql.log"):
            (paths.backup_scratch_dir / name).unlink(missing_ok=True)
        paths.scratch_marker.unlink(missing_ok=True)
        return True
