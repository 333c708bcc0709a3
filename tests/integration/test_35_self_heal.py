"""A stack that heals itself: faults injected by hand (not through `hastack drill`), and no
command run until the stack is healthy again. Deadlines come from the issue's targets; how
long healing took is reported by the drills, not asserted here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from hastack.ops.status import stack_status
from hastack.runtime import heartbeat
from tests.integration.conftest import Result, Stack
from tests.integration.drill_checks import assert_clean_and_healed, drill_report
from tests.integration.helpers import wait_until

HEALTHY_AGAIN_S = 60.0
"""The target: a crashed or stalled leader's node back, 3 nodes streaming, within 60 s."""


def leader_of(stack: Stack) -> str:
    leader = stack.hs.leader()
    assert leader is not None
    return leader


def node_pids(stack: Stack, node: str) -> list[int]:
    user = stack.plan.node(node).user
    return [p.pid for p in psutil.process_iter(["username"]) if p.info["username"] == user]


def signal_node(stack: Stack, node: str, sig: signal.Signals) -> int:
    pids = node_pids(stack, node)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return len(pids)


def healthy_with_every_node_streaming(stack: Stack) -> bool:
    status = stack_status(stack.hs)
    streaming = [m for m in status.snapshot.members if m.state in ("streaming", "running")]
    return status.assessment.healthy and len(streaming) == len(stack.plan.postgres_nodes)


def decisions(stack: Stack) -> str:
    return stack.plan.paths.fencer_log.read_text()


def postmaster_pid(stack: Stack, node: str) -> int | None:
    status = stack_status(stack.hs)
    return next(m.pid for m in status.snapshot.members if m.name == node)


@pytest.mark.slow
def test_a_crashed_leader_node_comes_back_by_itself(stack: Stack) -> None:
    """In `make test-slow`: `make test` runs the same fault as the crash-primary drill
    (test_50), which also checks every acknowledged write."""
    old = leader_of(stack)
    killed = postmaster_pid(stack, old)
    assert killed is not None
    assert signal_node(stack, old, signal.SIGKILL) > 3

    def healed() -> bool:
        # Right after the kill, the DCS still shows the node as it was (until its member key
        # expires): healed means a new postmaster on that node, and everyone streaming.
        return postmaster_pid(stack, old) not in (None, killed) and (
            healthy_with_every_node_streaming(stack)
        )

    wait_until(healed, HEALTHY_AGAIN_S, 0.5)


def test_a_stalled_leader_node_comes_back_after_sigcont(stack: Stack) -> None:
    old = leader_of(stack)
    signal_node(stack, old, signal.SIGSTOP)
    try:
        # The watcher fences the stalled node (its lease is no longer renewed) and the
        # synchronous standby takes over while the old node is still frozen.
        wait_until(lambda: stack.hs.leader() not in (None, old), 45, 0.5)
    finally:
        signal_node(stack, old, signal.SIGCONT)
    wait_until(lambda: healthy_with_every_node_streaming(stack), HEALTHY_AGAIN_S, 0.5)
    assert f"fencing {old}" in decisions(stack)


def test_a_stopped_program_comes_back_but_not_while_held(stack: Stack) -> None:
    sup = stack.hs.supervisor
    with stack.hs.hold(120, "integration test keeps Redis down", scope=["redis:redis"]):
        sup.stop("redis:redis")
        status = stack.run("status", "--json").json()
        holds = status["watcher"]["holds"]
        assert any(
            h["reason"] == "integration test keeps Redis down" and h["honoured"] for h in holds
        )
        # Several polls of the watcher: held, Redis stays down.
        polls = heartbeat_polls(stack)
        wait_until(lambda: heartbeat_polls(stack) >= polls + 8, 10)
        assert sup.process("redis:redis").state == "STOPPED"
    wait_until(lambda: sup.process("redis:redis").state == "RUNNING", 15, 0.2)
    wait_until(lambda: stack.status()[0] == 0, 30)


def heartbeat_polls(stack: Stack) -> int:
    beat = heartbeat.read(stack.plan.paths.watcher_heartbeat)
    return beat.polls if beat else -1


def test_status_reports_a_watcher_that_stopped_polling(stack: Stack) -> None:
    watcher = stack.hs.supervisor.process("fencer:fencer").pid
    os.kill(watcher, signal.SIGSTOP)
    try:
        problems = wait_until(
            lambda: [p for p in stack.status()[1]["problems"] if "no poll completed" in p], 30, 1
        )
        assert "fencing watcher" in problems[0]
        assert stack.status()[0] == 1
    finally:
        os.kill(watcher, signal.SIGCONT)
    wait_until(lambda: stack.status()[0] == 0, 30)


def count(pattern: str) -> int:
    return sum(
        1 for p in psutil.process_iter(["cmdline"]) if pattern in " ".join(p.info["cmdline"] or [])
    )


def test_supervisord_killed_then_up_leaves_exactly_one_set(stack: Stack) -> None:
    state = str(stack.plan.paths.state_dir)
    sup = stack.hs.supervisor
    pid = sup.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not sup.is_running() or sup.pid() != pid, 10)
    _, status = stack.status()
    assert status["orphans"], status["problems"]
    result = stack.run("up", timeout_s=600)
    assert result.code == 0, result.err[-3000:]
    wait_until(lambda: stack.status()[0] == 0, 60)
    # Exactly one set remains. A process can pass through briefly (a fourth `postgres -D`
    # was counted once, most likely one Patroni started that exited on the data directory's
    # lock): what counts is the set that stays, so each count must settle on its number.
    expected = {
        f"bin/patroni {state}/": 3,
        f"--data-dir={state}/": 3,  # etcd members
        f"postgres -D {state}/": 3,
        f"supervisord -c {state}/": 1,
        f"runtime.watcher {state}/": 1,
    }
    counts = lambda: {pattern: count(pattern) for pattern in expected}  # noqa: E731
    try:
        wait_until(lambda: counts() == expected, 30, 1.0)
    except AssertionError:
        assert counts() == expected  # says which process set did not settle
    assert stack.status()[1]["orphans"] == []


def test_the_installed_cli_runs_without_the_checkout(stack: Stack) -> None:
    """Root runs only the installed copy (/opt/hastack): from anywhere, with the spec copy
    `up` keeps in the state directory, it restarts a node and runs a drill (kill-patroni,
    with every check test_50 makes of a drill: it runs here only)."""
    installed = Path(str(stack.plan.spec.binaries.hastack_python)).with_name("hastack")
    spec = str(stack.plan.paths.applied_spec)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
    replica = next(m["name"] for m in stack.status()[1]["postgres"] if m["role"] == "replica")
    results = []
    for args in (["restart", replica], ["drill", "run", "kill-patroni", "--json"]):
        proc = subprocess.run(
            [str(installed), "-c", spec, *args],
            capture_output=True,
            text=True,
            cwd="/",
            env=env,
            timeout=600,
            check=False,
        )
        results.append(Result(proc.returncode, proc.stdout, proc.stderr))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_clean_and_healed(stack, drill_report(results[-1]))
    for pattern in ("supervisord -c", "runtime.watcher"):
        cmd = next(
            " ".join(p.info["cmdline"])
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"]
            and pattern in " ".join(p.info["cmdline"])
            and str(stack.plan.paths.state_dir) in " ".join(p.info["cmdline"])
        )
        assert cmd.startswith(str(stack.plan.spec.binaries.hastack_python)), cmd


def test_a_replica_with_a_damaged_data_directory_is_rebuilt_by_itself(stack: Stack) -> None:
    """pg_control removed and PostgreSQL killed: Patroni alone retries the start forever;
    the watcher asks it to rebuild the replica."""
    leader = leader_of(stack)
    replica = next(n for n in stack.plan.postgres_nodes if n.name != leader)
    killed = postmaster_pid(stack, replica.name)
    assert killed is not None
    (replica.paths.pgdata / "global" / "pg_control").unlink()
    os.kill(killed, signal.SIGKILL)

    def rebuilt() -> bool:
        return postmaster_pid(stack, replica.name) not in (None, killed) and (
            healthy_with_every_node_streaming(stack)
        )

    wait_until(rebuilt, 180, 1.0)
    repairs = [
        json.loads(line)
        for line in decisions(stack).splitlines()
        if '"repair"' in line and replica.name in line
    ]
    assert repairs and repairs[-1]["reinitialized"] is True, repairs
