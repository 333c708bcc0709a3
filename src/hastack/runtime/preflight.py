"""Checks before anything starts: root, programs installed, ports free, paths reachable."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from hastack.errors import HastackError
from hastack.spec.plan import StackPlan

PORTS_RECHECK_S = 0.5

SOCKET_PATH_MAX = 100
"""sun_path holds 108 bytes; keep a margin for the longest socket name under the state dir."""


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str

    def format(self) -> str:
        return f"{self.what}\n    fix: {self.fix}"


class PreflightError(HastackError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        details = [line for p in problems for line in p.format().splitlines()]
        super().__init__(
            f"cannot start: {len(problems)} problem(s), nothing was changed",
            "fix the problems above, then run `hastack up` again",
            details,
        )


def required_programs(plan: StackPlan) -> list[tuple[Path, str, str]]:
    """(path, spec key, how to install) for every external program the stack runs."""
    b = plan.spec.binaries
    version = plan.spec.postgres.version
    pg = f"apt-get install postgresql-{version}"
    programs = [
        (b.etcd, "binaries.etcd", "apt-get install etcd-server"),
        (b.haproxy, "binaries.haproxy", "apt-get install haproxy"),
        (b.pgbouncer, "binaries.pgbouncer", "apt-get install pgbouncer"),
        (b.redis_server, "binaries.redis_server", "apt-get install redis-server"),
        (b.pgbackrest, "binaries.pgbackrest", "apt-get install pgbackrest"),
        (b.patroni, "binaries.patroni", "run `make up` (it creates /opt/hastack/venv)"),
        (b.hastack_python, "binaries.hastack_python", "run `make up` (it installs hastack)"),
    ]
    programs += [
        (plan.postgres_bin_dir / tool, "binaries.postgres_bin_dir", pg)
        for tool in ("postgres", "initdb", "pg_ctl", "pg_rewind", "pg_basebackup")
    ]
    return programs


def check_programs(plan: StackPlan) -> list[Problem]:
    problems = []
    for path, key, install in required_programs(plan):
        if not (path.is_file() and os.access(path, os.X_OK)):
            problems.append(
                Problem(
                    what=f"{path} is missing ({key}); the stack cannot start without it",
                    fix=f"{install}, or point {key} at it in hastack.yaml",
                )
            )
    return problems


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int | None
    process: str
    user: str


def listeners() -> list[Listener]:
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or not conn.laddr:
            continue
        name, user = "?", "?"
        if conn.pid:
            try:
                proc = psutil.Process(conn.pid)
                name, user = proc.name(), proc.username()
            except psutil.Error:
                pass
        found.append(Listener(conn.laddr.ip, conn.laddr.port, conn.pid, name, user))
    return found


def wanted_ports(plan: StackPlan) -> list[tuple[str, int, str]]:
    """(address, port, spec key) for every socket the stack binds."""
    spec = plan.spec
    wanted = [
        (plan.services_address, spec.haproxy.rw_port, "haproxy.rw_port"),
        (plan.services_address, spec.haproxy.ro_port, "haproxy.ro_port"),
        (plan.services_address, spec.haproxy.stats_port, "haproxy.stats_port"),
        (plan.services_address, spec.pgbouncer.port, "pgbouncer.port"),
        (plan.services_address, spec.redis.port, "redis.port"),
    ]
    for node in plan.nodes:
        if node.etcd_member:
            wanted.append((node.address, spec.etcd.client_port, "etcd.client_port"))
            wanted.append((node.address, spec.etcd.peer_port, "etcd.peer_port"))
        if node.runs_postgres:
            wanted.append((node.address, spec.postgres.port, "postgres.port"))
            wanted.append((node.address, spec.patroni.rest_port, "patroni.rest_port"))
            if plan.backup_enabled:
                wanted.append((node.address, spec.backup.port, "backup.port"))
    if plan.backup_enabled:
        wanted.append((plan.backup_address, plan.repo_port, "backup.port"))
        # where `hastack restore` starts its scratch instance
        wanted.append((plan.backup_address, plan.scratch_port, "postgres.port"))
    return wanted


def check_ports(plan: StackPlan, current: list[Listener]) -> list[Problem]:
    """Ports held by anything but this stack's own users. Pure given `current`."""
    ours = set(plan.all_users)
    problems = []
    for address, port, key in wanted_ports(plan):
        for lst in current:
            if lst.port != port or lst.user in ours:
                continue
            if lst.address in (address, "0.0.0.0", "::"):
                holder = f"pid {lst.pid} ({lst.process}, user {lst.user})" if lst.pid else "?"
                problems.append(
                    Problem(
                        what=(
                            f"port {port} on {address} ({key}) is in use by {holder} "
                            f"listening on {lst.address}:{port}"
                        ),
                        fix=f"stop that process, or set {key} (or network.subnet) to a free one",
                    )
                )
                break
    return problems


def ports_held(
    plan: StackPlan,
    read: Callable[[], list[Listener]] = listeners,
    pause: Callable[[float], None] = time.sleep,
) -> list[Problem]:
    """`check_ports`, asked twice when the first answer finds a problem. The sockets and
    their holders are read one after the other: a listener opened in between (Patroni
    restarting its REST API on a reload) has no holder yet, one whose process exits in
    between has no user (measured: 42 of 571 sightings of a socket reopened every 2 ms).
    Only a port still held by someone else a moment later is a problem."""
    busy = check_ports(plan, read())
    if busy:
        pause(PORTS_RECHECK_S)
        busy = check_ports(plan, read())
    return busy


def check_paths(plan: StackPlan) -> list[Problem]:
    problems = []
    longest = plan.paths.supervisor_socket
    if len(str(longest)) > SOCKET_PATH_MAX:
        problems.append(
            Problem(
                what=f"state_dir {plan.paths.state_dir} is too long for unix sockets",
                fix="choose a state_dir of at most ~60 characters",
            )
        )
    # Node users must reach their own directories: every ancestor needs o+x.
    for parent in reversed(plan.paths.state_dir.parents):
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            problems.append(
                Problem(
                    what=(
                        f"{parent} is not searchable by other users, so the stack's system "
                        f"users cannot reach {plan.paths.state_dir}"
                    ),
                    fix="set state_dir to a path under /var/lib or /srv (the default is fine)",
                )
            )
            break
    return problems


def root_trusts(path: Path) -> str | None:
    """Why root must not run code from `path`, or None: the path and every directory above
    it must belong to root and be writable by nobody else (whoever can write any of them
    can replace what root runs)."""
    for part in (path, *path.parents):
        try:
            st = part.lstat()
        except OSError:
            return f"{part} does not exist"
        if st.st_uid != 0:
            return f"{part} belongs to uid {st.st_uid}, not root"
        if stat.S_ISLNK(st.st_mode):
            continue  # its target is checked by the caller (root_trusts(path.resolve()))
        # A sticky directory (/tmp) lets nobody but root replace what root put in it.
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and part != path
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
            return f"{part} is writable by its group or by others"
    return None


def root_trusts_resolved(path: Path) -> str | None:
    """`root_trusts` for the path as given and for where its symlinks lead."""
    return root_trusts(path) or root_trusts(path.resolve())


def check_programs_trusted(plan: StackPlan) -> list[Problem]:
    """Every program root starts (itself, or as a service user from a root process) must be
    one only root can change: `binaries.*` in a spec must not point into a user's files."""
    problems = []
    for path, key, _install in required_programs(plan):
        why = root_trusts_resolved(path)
        if why:
            problems.append(
                Problem(
                    what=f"{key} = {path}: root would run it, but {why}",
                    fix=f"install it under a root-owned directory (`chown root:root` and "
                    f"`chmod go-w` on it and every directory above), or point {key} elsewhere",
                )
            )
    return problems


def _read_by_root(files: list[tuple[str, Path]], keep: str) -> list[Problem]:
    """Operator-named files root reads and hands on: each must be one only root can change.
    `keep`: how to make it so (after `chown root:root`)."""
    problems = []
    for key, path in files:
        why = root_trusts_resolved(path)
        if why:
            problems.append(
                Problem(
                    what=f"{key} = {path}: root would read it, but {why}",
                    fix=f"keep it in a root-owned directory (`chown root:root`, {keep}), or "
                    f"point {key} there",
                )
            )
    return problems


def check_own_tls_trusted(plan: StackPlan) -> list[Problem]:
    """Root reads the operator's certificate and key (`http.tls.cert`/`key`) and hands them
    to HAProxy's user: a path another user could change would let them swap in any file
    root can read (a symlink to /etc/shadow) and have it copied where they can read it."""
    tls = plan.spec.http.tls
    files = [(k, p) for k, p in (("http.tls.cert", tls.cert), ("http.tls.key", tls.key)) if p]
    return _read_by_root(files, "`chmod go-w` on it and every directory above")


def check_s3_files_trusted(plan: StackPlan) -> list[Problem]:
    """The S3 repository's access key and CA bundle go into the repository host's config:
    the same rule as the operator's certificate (only files only root can change)."""
    s3 = plan.spec.backup.s3
    if s3 is None:
        return []
    named = (("backup.s3.credentials_file", s3.credentials_file), ("backup.s3.ca_file", s3.ca_file))
    problems = []
    for key, path in named:
        if path is None:
            continue
        if not path.is_file():
            problems.append(
                Problem(
                    what=f"{key} = {path}: no such file",
                    fix=f"create it (docs/backups.md#a-second-repository-in-s3), or correct {key}",
                )
            )
            continue
        problems += _read_by_root([(key, path)], "`chmod 600`")
    return problems


def spec_file_problem(path: Path) -> Problem | None:
    """Root acts on the spec (it names programs, paths, users): a spec someone else can
    write is a way to root."""
    if not path.exists():
        return None  # loading it says so, with how to create one
    why = root_trusts_resolved(Path(os.path.abspath(path)))
    if why is None:
        return None
    return Problem(
        what=f"refusing to act as root on {path}: {why}",
        fix=f"`chown root:root {path} && chmod go-w {path}` (and the same for the directory "
        "it is in), or copy it to a root-owned directory",
    )


def check_installed(plan: StackPlan) -> list[Problem]:
    """supervisord and the watcher run as root from `binaries.hastack_python`'s venv: it
    must be an installed copy that only root can change, never a checkout."""
    python = plan.spec.binaries.hastack_python
    venv = python.parent.parent
    problems = []
    for path in (venv, venv / "lib"):
        why = root_trusts(path)
        if why:
            problems.append(
                Problem(
                    what=f"root would run hastack from {venv}, but {why}",
                    fix="run `make up` (it installs hastack into /opt/hastack/venv, owned by "
                    "root), or point binaries.hastack_python at such an install",
                )
            )
            break
    return problems


def preflight(plan: StackPlan, *, check_ports_free: bool = True) -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append(
            Problem(
                what="hastack must run as root to bring a stack up",
                fix="run it with sudo; it creates one system user per node and never runs a "
                "server as root",
            )
        )
    problems += check_programs(plan)
    if not problems:
        problems += check_programs_trusted(plan)
        problems += check_own_tls_trusted(plan)
        problems += check_s3_files_trusted(plan)
        problems += check_installed(plan)
    problems += check_paths(plan)
    if check_ports_free:
        problems += ports_held(plan)
    if problems:
        raise PreflightError(problems)
