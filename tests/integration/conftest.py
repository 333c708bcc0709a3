"""One real stack shared by the integration tests, on its own name, subnet and state dir,
so it never collides with a stack a user runs on the same machine."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hastack.runtime.stack import Stack as StackHandle
from hastack.spec import StackPlan, load_spec, roles
from tests.otlp_receiver import Receiver

STACK_NAME = "hstest"
SUBNET = "127.0.213.0/24"
STATE_DIR = Path("/var/lib/hastack/hstest")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="integration tests need root"))


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def hastack(spec: Path, *args: str, timeout_s: float = 300) -> Result:
    """Run the real CLI in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "hastack", "-c", str(spec), *args],
        stdin=subprocess.DEVNULL,  # a question gets end of input (no), never a hang
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_spec(path: Path, name: str, subnet: str, state_dir: Path, extra: str = "") -> Path:
    path.write_text(f"name: {name}\nstate_dir: {state_dir}\nnetwork:\n  subnet: {subnet}\n{extra}")
    return path


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A 0755 scratch dir: node users must be able to reach a state dir (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="hastack-it-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Stack:
    spec: Path
    plan: StackPlan
    up: dict[str, Any]
    traces: Receiver
    """Where the app instances send their traces (the spec's `app.tracing`)."""

    @property
    def hs(self) -> StackHandle:
        """hastack's own handle on this stack (supervisor, secrets, clients)."""
        return StackHandle(self.plan)

    def run(self, *args: str, timeout_s: float = 300) -> Result:
        return hastack(self.spec, *args, timeout_s=timeout_s)

    def status(self) -> tuple[int, dict[str, Any]]:
        result = self.run("status", "--json")
        return result.code, result.json()

    def ensure_scratch_table(self) -> None:
        """`it_rows`, which tests fill through the stack's URLs (as the app role, which has
        DML rights only: the table is created by its owner role on the leader)."""
        leader = self.status()[1]["leader_key"]
        with self.hs.connect(leader) as conn:
            conn.execute(f"SET ROLE {roles.OWNER}")
            conn.execute("CREATE TABLE IF NOT EXISTS it_rows (id text PRIMARY KEY, v int)")


KEPT_LOGS = Path("/var/tmp/hastack-test-logs")
"""The shared stack's logs, watcher decisions and drill reports, copied here before it is
destroyed (replacing the previous run's): a failure can be read after the run."""


def keep_logs(state_dir: Path = STATE_DIR, kept: Path | None = None) -> None:
    """`kept`: where (KEPT_LOGS by default, the shared stack's)."""
    kept = kept or KEPT_LOGS
    shutil.rmtree(kept, ignore_errors=True)
    for part in ("logs", "fencing", "drills", "services/monitor/alerts.jsonl"):
        source = state_dir / part
        with contextlib.suppress(OSError, shutil.Error):
            if source.is_dir():
                shutil.copytree(source, kept / part, symlinks=True)
            elif source.is_file():
                (kept / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, kept / part, follow_symlinks=False)
    with contextlib.suppress(OSError):
        kept.chmod(0o700)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A collector for the app's traces, outside the stack's subnet (nothing foreign listens
    # there); the default 10 % sampling keeps the session's load light on it.
    traces = Receiver()
    spec = write_spec(
        tmp_path_factory.mktemp("stack") / "hastack.yaml",
        STACK_NAME,
        SUBNET,
        STATE_DIR,
        f"app:\n  tracing:\n    otlp_endpoint: {traces.endpoint}\n",
    )
    if STATE_DIR.exists():  # left behind by an aborted run: it is ours, start clean
        hastack(spec, "destroy", "--yes")
    result = hastack(spec, "up", "--json")
    assert result.code == 0, result.err
    yield Stack(spec=spec, plan=load_spec(spec).plan, up=result.json()["up"], traces=traces)
    if STATE_DIR.exists():
        keep_logs()
        hastack(spec, "destroy", "--yes")
    traces.close()
