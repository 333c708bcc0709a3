"""Last: destroy leaves nothing of the shared stack (even after test_95 killed every process
of it, as a lost region leaves it)."""

from __future__ import annotations

from hastack.runtime.orphans import stack_processes
from hastack.tools.system_users import user_exists
from tests.integration.conftest import Stack, keep_logs


def test_destroy_leaves_nothing_running_and_no_state(stack: Stack) -> None:
    keep_logs(stack.plan.paths.state_dir)  # what a failure earlier in the run needs read
    result = stack.run("destroy", "--yes")
    assert result.code == 0, result.err
    assert stack_processes(stack.hs.identity) == []
    assert not stack.plan.paths.state_dir.exists()
    assert not any(user_exists(u) for u in stack.plan.all_users)
    status = stack.run("status")
    assert status.code == 2
