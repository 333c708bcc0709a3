"""`hastack logs`: where each component writes, and reading it."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from hastack.errors import HastackError
from hastack.ops.logmerge import LogLine, Unplaced, merge, timed_lines
from hastack.runtime.files import UnsafePath, open_regular
from hastack.runtime.stack import program_list
from hastack.spec.plan import StackPlan

NODE_COMPONENTS = ("patroni", "etcd", "postgres", "pgbackrest")
SERVICES = (
    "haproxy",
    "pgbouncer",
    "redis",
    "supervisord",
    "fencer",
    "backup-repo",
    "backup-scheduler",
)


class UnknownLog(HastackError):
    pass


def log_files(plan: StackPlan, target: str, component: str | None = None) -> list[Path]:
    """Log files of a node component (`pg1 patroni`), a service (`haproxy`) or an app
    instance (`app1`)."""
    apps = {i.name for i in plan.app_instances}
    if target in apps:
        return [plan.paths.program_log(target)]
    if target == "monitor" and plan.monitoring_enabled:
        names = [p.name for p in program_list(plan) if p.component == "monitor"]
        component = component or "prometheus"
        if component not in names:
            raise UnknownLog(f"unknown monitoring program {component!r}; choose {', '.join(names)}")
        return [plan.paths.program_log(component)]
    if target in SERVICES:
        if target == "supervisord":
            return [plan.paths.supervisor_log]
        return [plan.paths.program_log(target)]
    try:
        node = plan.node(target)
    except KeyError as exc:
        choices = ", ".join(
            [*SERVICES, *(["monitor"] if plan.monitoring_enabled else []), *sorted(apps)]
        )
        raise UnknownLog(f"{exc.args[0]}; or one of the services: {choices}") from None
    component = component or ("patroni" if node.runs_postgres else "etcd")
    if component not in NODE_COMPONENTS:
        raise UnknownLog(f"unknown component {component!r}; choose {', '.join(NODE_COMPONENTS)}")
    if component == "postgres":
        logs = sorted(node.paths.log_dir.glob("postgresql-*.log"), key=_mtime)
        return logs[-1:] if logs else []
    return [plan.paths.program_log(f"{node.name}-{component}")]


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


_ESCAPES = {  # C0, DEL and C1 controls but tab, shown as \xNN
    c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(c) not in "\t"
}


def printable(line: str) -> str:
    """A log line as it may reach a terminal: service users write these files, and an escape
    sequence in them must not drive root's terminal (title, clipboard, hidden text)."""
    return line.translate(_ESCAPES)


def _open_log(path: Path) -> TextIO:
    """Open a log without following a symlink a service user may have put there, and only
    a regular file (a FIFO would block `hastack logs` forever)."""
    fd = open_regular(path)
    if fd is None:
        raise UnsafePath(f"refusing to read {path}: not a regular file", "remove it")
    return os.fdopen(fd, encoding="utf-8", errors="replace")


def tail(path: Path, lines: int) -> list[str]:
    try:
        with _open_log(path) as handle:
            return list(deque(handle, maxlen=lines))
    except FileNotFoundError:
        return []


class Follower:
    """The lines appended to one log since the last look. Survives rotation: a file that
    replaced the one being read is read from its start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: TextIO | None = None
        self.inode: int | None = None
        self.from_start = False

    def new_lines(self) -> list[str]:
        if self.handle is None:
            try:
                self.handle = _open_log(self.path)
                self.inode = os.fstat(self.handle.fileno()).st_ino
            except FileNotFoundError:
                self.from_start = True
                return []
            if not self.from_start:
                self.handle.seek(0, 2)
        lines = self.handle.readlines()
        if lines:
            return lines
        try:
            rotated = os.lstat(self.path).st_ino != self.inode
        except FileNotFoundError:
            rotated = True
        if rotated:
            self.handle.close()
            self.handle = None
            self.from_start = True
        return []


def follow(path: Path, poll_s: float = 0.25) -> Iterator[str]:
    """New lines appended to `path`, forever (the caller stops on Ctrl-C)."""
    for _source, line in follow_many({path.name: path}, poll_s):
        yield line


def follow_many(paths: dict[str, Path], poll_s: float = 0.25) -> Iterator[tuple[str, str]]:
    """(source, line) for every line appended to any of `paths`, forever."""
    followers = {source: Follower(path) for source, path in paths.items()}
    while True:
        quiet = True
        for source, follower in followers.items():
            for line in follower.new_lines():
                quiet = False
                yield source, line
        if quiet:
            time.sleep(poll_s)


def every_log(plan: StackPlan) -> dict[str, Path]:
    """Every log of the stack, by source name: each supervised program's, supervisord's and
    each node's current PostgreSQL log."""
    found = {p.name: p.log_file for p in program_list(plan)}
    found["supervisord"] = plan.paths.supervisor_log
    for node in plan.nodes:
        if node.runs_postgres:
            found.update(
                {f"{node.name}-postgres": p for p in log_files(plan, node.name, "postgres")}
            )
    return found


@dataclass(frozen=True)
class MergedLogs:
    lines: list[LogLine]
    unplaced: dict[str, int]
    """Per source, lines that carry no time and follow none that does (not shown)."""
    unreadable: dict[str, str]


def merged_logs(logs: dict[str, Path], since: datetime | None, last: int | None) -> MergedLogs:
    """The lines of `logs` (source -> file, `every_log`) since `since` (or the `last`
    ones), in time order."""
    local = datetime.now().astimezone().tzinfo or UTC
    unplaced = Unplaced()
    unreadable: dict[str, str] = {}
    streams = []
    for source, path in sorted(logs.items()):
        try:
            with _open_log(path) as handle:
                text = handle.read()
        except FileNotFoundError:
            continue
        except (OSError, HastackError) as exc:
            unreadable[source] = getattr(exc, "what", None) or str(exc)
            continue
        streams.append(list(timed_lines(source, text.splitlines(), local, unplaced)))
    return MergedLogs(merge(streams, since, last), unplaced.counts, unreadable)
