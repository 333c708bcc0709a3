"""The installed hastack (`/opt/hastack/venv`): when it was last installed, and which running
programs still run an older copy of it (the watcher and the app instances load hastack's
code when they start, and keep it until they restart)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import psutil

from hastack.render.program import Program
from hastack.runtime.supervisor import Supervisor


def installed_at(python: Path) -> float | None:
    """When the hastack package beside `python` was last installed (its files' mtime)."""
    venv = python.parent.parent
    for init in sorted(venv.glob("lib/python3*/site-packages/hastack/__init__.py")):
        return init.stat().st_mtime
    return None


def running_older_code(
    sup: Supervisor, programs: Sequence[Program], installed: float
) -> list[Program]:
    """The programs whose running process started before hastack was last installed."""
    pids = {p.process_name: p.pid for p in sup.processes() if p.running}
    older = []
    for program in programs:
        pid = pids.get(program.process_name)
        try:
            if pid and psutil.Process(pid).create_time() < installed:
                older.append(program)
        except psutil.Error:
            continue
    return older
