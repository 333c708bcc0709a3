"""Killed processes come back (supervisor), and `status` shows the gap while they are away."""

from __future__ import annotations

import os
import signal

import psycopg

from hastack.ops.status import stack_status
from hastack.runtime.snapshot import postmaster_pid
from tests.integration.conftest import Stack
from tests.integration.helpers import wait_until


def kill_program(stack: Stack, process_name: str) -> int:
    sup = stack.hs.supervisor
    pid = sup.process(process_name).pid
    assert pid > 0
    os.kill(pid, signal.SIGKILL)
    return pid


def degraded_naming(stack: Stack, words: tuple[str, ...]) -> bool:
    """Assessed in-process (~0.1 s, against ~1 s for the CLI): a restart by the supervisor
    is over in a second or two, and a slow poll can miss the gap entirely."""
    assessment = stack_status(stack.hs).assessment
    return assessment.health == "degraded" and any(
        all(w in p for w in words) for p in assessment.problems
    )


def healthy(stack: Stack) -> bool:
    return stack.status()[0] == 0


def test_killed_replica_patroni_is_restarted(stack: Stack) -> None:
    _, status = stack.status()
    replica = next(m["name"] for m in status["postgres"] if m["role"] == "replica")
    old = kill_program(stack, f"{replica}:{replica}-patroni")
    wait_until(lambda: degraded_naming(stack, (replica,)), 10, interval_s=0.05)
    wait_until(lambda: healthy(stack), 60)
    assert stack.hs.supervisor.process(f"{replica}:{replica}-patroni").pid != old


def test_killed_leader_patroni_returns_without_failover(stack: Stack) -> None:
    """PostgreSQL is Patroni's detached child: it keeps running, and the restarted Patroni
    adopts it and keeps the leader lock (no failover, same postmaster)."""
    _, status = stack.status()
    leader = status["leader_key"]
    postmaster = postmaster_pid(stack.plan.node(leader))
    kill_program(stack, f"{leader}:{leader}-patroni")
    wait_until(lambda: not stack_status(stack.hs).assessment.healthy, 10, interval_s=0.05)
    wait_until(lambda: healthy(stack), 60)
    _, after = stack.status()
    assert after["leader_key"] == leader
    assert postmaster_pid(stack.plan.node(leader)) == postmaster


def test_killed_etcd_member_is_restarted(stack: Stack) -> None:
    old = kill_program(stack, "pg2:pg2-etcd")
    wait_until(lambda: degraded_naming(stack, ("etcd",)), 10, interval_s=0.05)
    wait_until(lambda: healthy(stack), 60)
    assert stack.hs.supervisor.process("pg2:pg2-etcd").pid != old


def test_restart_a_service_and_a_replica_node(stack: Stack) -> None:
    result = stack.run("restart", "haproxy", "--json")
    assert result.code == 0, result.err
    assert result.json()["health"] == "healthy"
    _, status = stack.status()
    replica = next(m["name"] for m in status["postgres"] if m["role"] == "replica")
    result = stack.run("restart", replica, "--json")
    assert result.code == 0, result.out + result.err
    assert result.json()["restarted"] == [
        f"{replica}-patroni",
        f"{replica}-etcd",
        f"{replica}-pgbackrest",
    ]
    unknown = stack.run("restart", "pg7")
    assert unknown.code == 1 and "unknown target 'pg7'" in unknown.err


def test_read_only_port_falls_back_to_the_primary_without_replicas(stack: Stack) -> None:
    env = stack.run("env", "--json").json()
    sup = stack.hs.supervisor
    _, status = stack.status()
    replicas = [m["name"] for m in status["postgres"] if m["role"] != "leader"]

    def ro_in_recovery() -> bool | None:
        try:
            with psycopg.connect(
                env["DATABASE_URL_DIRECT"].rsplit(":", 1)[0]
                + f":{stack.plan.spec.haproxy.ro_port}/{stack.plan.spec.postgres.database}",
                connect_timeout=2,
            ) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                return bool(row and row[0])
        except psycopg.Error:
            return None

    assert ro_in_recovery() is True
    kept_down = [f"{name}:{name}-patroni" for name in replicas]
    # The watcher would start them again after 2 s: keep them down on purpose.
    with stack.hs.hold(120, "test: replicas' Patroni down", scope=kept_down):
        for name in kept_down:
            sup.stop(name, wait=True)
        wait_until(lambda: ro_in_recovery() is False, 10)
    wait_until(lambda: healthy(stack), 90)
    assert ro_in_recovery() is True
