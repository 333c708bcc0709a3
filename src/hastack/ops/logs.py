"""`hastack logs`: where each component writes, and reading it."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from hastack.errors import HastackError
from hastack.spec.plan import StackPlan

NODE_COMPONENTS = ("patroni", "etcd", "postgres")
SERVICES = ("haproxy", "pgbouncer", "redis", "supervisord", "fencer")


class UnknownLog(HastackError):
    pass


def log_files(plan: StackPlan, target: str, component: str | None = None) -> list[Path]:
    """Log files of a node component (`pg1 patroni`), a service (`haproxy`) or an app
    instance (`app1`)."""
    apps = {i.name for i in plan.app_instances}
    if target in apps:
        return [plan.paths.service("app") / f"{target}.log"]
    if target in SERVICES:
        if target == "supervisord":
            return [plan.paths.supervisor_log]
        if target == "fencer":
            return [plan.paths.fencing_dir / "fencer.log"]
        return [plan.paths.service(target) / f"{target}.log"]
    try:
        node = plan.node(target)
    except KeyError as exc:
        choices = ", ".join([*SERVICES, *sorted(apps)])
        raise UnknownLog(f"{exc.args[0]}; or one of the services: {choices}") from None
    component = component or ("patroni" if node.runs_postgres else "etcd")
    if component not in NODE_COMPONENTS:
        raise UnknownLog(f"unknown component {component!r}; choose {', '.join(NODE_COMPONENTS)}")
    if component == "postgres":
        logs = sorted(node.paths.log_dir.glob("postgresql-*.log"), key=_mtime)
        return logs[-1:] if logs else []
    return [node.paths.log_dir / f"{component}.log"]


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return list(deque(handle, maxlen=lines))
    except FileNotFoundError:
        return []


def follow(path: Path, poll_s: float = 0.25) -> Iterator[str]:
    """New lines appended to `path`, forever (the caller stops on Ctrl-C). Survives rotation:
    a file that replaced the one being read is read from its start."""
    handle = None
    inode = None
    from_start = False
    while True:
        if handle is None:
            try:
                handle = path.open(encoding="utf-8", errors="replace")
                inode = path.stat().st_ino
            except FileNotFoundError:
                from_start = True
                time.sleep(poll_s)
                continue
            if not from_start:
                handle.seek(0, 2)
        line = handle.readline()
        if line:
            yield line
            continue
        try:
            rotated = path.stat().st_ino != inode
        except FileNotFoundError:
            rotated = True
        if rotated:
            handle.close()
            handle = None
            from_start = True
            continue
        time.sleep(poll_s)
