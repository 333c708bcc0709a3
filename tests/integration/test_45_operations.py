"""Leadership and maintenance operations on the shared stack."""

from __future__ import annotations

from tests.integration.conftest import Stack


def roles(stack: Stack) -> dict[str, str]:
    _, status = stack.status()
    return {m["role"]: m["name"] for m in status["postgres"]}


def test_pause_and_resume(stack: Stack) -> None:
    assert stack.run("pause").code == 0
    code, status = stack.status()
    assert status["paused"] is True and code == 1
    assert any("maintenance mode" in p for p in status["problems"])
    assert stack.run("resume").code == 0
    code, status = stack.status()
    assert status["paused"] is False and code == 0


def test_switchover_to_the_sync_standby(stack: Stack) -> None:
    before = roles(stack)
    result = stack.run("switchover", "--json")
    assert result.code == 0, result.err
    change = result.json()
    assert change["old_leader"] == before["leader"]
    assert change["new_leader"] == before["sync_standby"]
    assert change["pooler_paused"] is True
    assert roles(stack)["leader"] == before["sync_standby"]


def test_switchover_refuses_an_async_replica_in_sync_mode(stack: Stack) -> None:
    replica = roles(stack)["replica"]
    result = stack.run("switchover", "--to", replica)
    assert result.code == 1
    assert "only the synchronous standby" in result.err


def test_manual_failover_with_force(stack: Stack) -> None:
    before = roles(stack)
    result = stack.run("failover", "--to", before["sync_standby"], "--force", "--json")
    assert result.code == 0, result.err
    assert roles(stack)["leader"] == before["sync_standby"]


def test_reinit_a_replica_and_refuse_the_leader(stack: Stack) -> None:
    current = roles(stack)
    result = stack.run("reinit", current["replica"])
    assert result.code == 0, result.err
    assert "reinitialised" in result.out
    refused = stack.run("reinit", current["leader"])
    assert refused.code == 1 and "is the leader" in refused.err
