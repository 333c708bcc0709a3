"""`exclusive`: two processes take turns; one process may nest the same lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hastack.runtime.locks import exclusive

TRY_FROM_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from hastack.errors import HastackError
from hastack.runtime.locks import exclusive
try:
    with exclusive(Path(sys.argv[1]), "test", timeout_s=0):
        print("acquired")
except HastackError as exc:
    print(exc.what)
"""


def _from_another_process(path: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", TRY_FROM_ANOTHER_PROCESS, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_held_lock_keeps_other_processes_out_and_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "up.lock"
    with exclusive(path, "test", timeout_s=0):
        assert _from_another_process(path).startswith("another test (pid ")
    assert _from_another_process(path) == "acquired"


def test_the_holder_may_take_its_lock_again_and_keeps_it_until_the_outer_block_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "up.lock"
    with exclusive(path, "test", timeout_s=0):
        with exclusive(path, "test", timeout_s=0):  # a rotation's `up`
            pass
        assert "another test" in _from_another_process(path)  # still held
