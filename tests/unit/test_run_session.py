"""The operator's fence command runs in a session of its own: at the timeout everything it
started is killed, not only the shell (real /bin/sh and sleep, a second or two)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from hastack.tools.base import run_session


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_timeout_kills_what_the_command_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    result = run_session(
        ["/bin/sh", "-c", f"sleep 60 & echo $! > {pid_file}; echo started; wait"],
        timeout_s=1.0,
    )
    assert result.returncode == 124 and "timed out after 1 s" in result.stderr
    assert result.stdout.strip() == "started"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the command's own child outlived the timeout"


def test_a_command_gets_its_environment_and_exit_code() -> None:
    result = run_session(
        ["/bin/sh", "-c", 'echo "$HASTACK_FENCE_HOST"; exit 3'],
        timeout_s=10.0,
        env={"HASTACK_FENCE_HOST": "db2"},
    )
    assert result.returncode == 3 and result.stdout.strip() == "db2"
