"""Pipelines (a dump into gpg), which side of one failed, persistent holds, set-aside names."""

from __future__ import annotations

import signal
from pathlib import Path

from hastack.runtime import holds
from hastack.runtime.cluster_restore import ASIDE_MARK, aside_name
from hastack.runtime.dumps import _cause
from hastack.tools.base import ToolResult, run_pipeline


def result(code: int) -> ToolResult:
    return ToolResult(("x",), code, "", "", 0.0)


def test_a_pipeline_passes_the_first_programs_output_to_the_second() -> None:
    first, second = run_pipeline(["sh", "-c", "echo hello; echo oops >&2"], ["tr", "a-z", "A-Z"])
    assert first.ok and second.ok
    assert second.stdout == "HELLO\n" and "oops" in first.stderr
    first, second = run_pipeline(["sh", "-c", "exit 3"], ["cat"])
    assert first.returncode == 3 and second.ok
    first, second = run_pipeline(["/nonexistent/prog"], ["cat"])
    assert first.returncode == 127 and not second.ok


def test_a_pipeline_that_outlives_its_deadline_is_killed() -> None:
    first, second = run_pipeline(["sleep", "30"], ["cat"], timeout_s=0.5)
    assert first.returncode == 124 and second.returncode == 124
    assert "timed out" in second.stderr


def test_the_failure_named_is_the_one_that_came_first() -> None:
    sigpipe = -signal.SIGPIPE
    assert _cause(result(sigpipe), result(1)).returncode == 1  # the reader failed first
    assert _cause(result(2), result(0)).returncode == 2
    assert _cause(result(2), result(1)).returncode == 2  # a producer's own error
    assert _cause(result(0), result(1)).returncode == 1


def test_a_persistent_hold_stays_until_removed(tmp_path: Path) -> None:
    directory = tmp_path / "holds"
    path = holds.place_persistent(directory, "cluster-restore", "a restore did not finish", ["a"])
    assert holds.persistent(directory, "cluster-restore") == path
    (view,) = holds.read(directory, now=1e12)  # far in the future: still honoured
    assert view.honoured and view.hold.covers("a") and not view.hold.covers("b")
    assert "until persistent-cluster-restore.json is removed" in view.sentence(0.0)
    assert holds.prune(directory, 1e12) == []
    assert holds.release_all(directory) == 0  # `drill cleanup` leaves it
    holds.remove_persistent(directory, "cluster-restore")
    assert holds.persistent(directory, "cluster-restore") is None


def test_a_directory_set_aside_keeps_its_name_and_time() -> None:
    moved = aside_name(Path("/s/nodes/pg1/pgdata"), "20261127T200000Z")
    assert moved == Path(f"/s/nodes/pg1/pgdata{ASIDE_MARK}20261127T200000Z")
