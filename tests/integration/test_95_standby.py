"""A standby cluster of the shared stack (a second region on its own subnet, behind a
delaying link): it streams, refuses promotion while the primary takes writes, and the
region-loss drill (every process of the primary killed under write load, the standby
promoted) passes. After the lifecycle test that stops and starts the shared stack, before
test_99 destroys it: the drill leaves it killed, as a lost region."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hastack.runtime.stack import Stack as StackHandle
from hastack.spec import load_spec
from tests.integration.conftest import Stack, hastack, write_spec

DR_STATE = Path("/var/lib/hastack/hstestdr")


@pytest.fixture
def standby_spec(stack: Stack, tmp_path: Path) -> Iterator[Path]:
    extra = (
        "postgres:\n  node_prefix: dr\napp:\n  instances: 0\n"
        f"standby_cluster:\n  primary: {stack.spec}\n  latency_ms: 10\n"
    )
    spec = write_spec(tmp_path / "dr.yaml", "hstestdr", "127.0.214.0/24", DR_STATE, extra)
    if DR_STATE.exists():
        hastack(spec, "destroy", "--yes")
    yield spec
    if DR_STATE.exists():
        hastack(spec, "destroy", "--yes")


def test_a_standby_of_a_stack_never_brought_up_is_refused_before_anything_is_made(
    tmp_path: Path,
) -> None:
    primary = write_spec(
        tmp_path / "main.yaml", "hsnothere", "127.0.215.0/24", Path("/var/lib/hastack/hsnothere")
    )
    extra = f"postgres:\n  node_prefix: dr\nstandby_cluster:\n  primary: {primary}\n"
    spec = write_spec(tmp_path / "dr.yaml", "hsnotheredr", "127.0.216.0/24", DR_STATE, extra)
    result = hastack(spec, "up")
    assert result.code == 1
    said = " ".join(result.err.split())  # the console may wrap a long line
    assert "has no secrets" in said and "bring the primary up first" in said, result.err
    assert not DR_STATE.exists()


def test_standby_cluster_streams_then_takes_over(stack: Stack, standby_spec: Path) -> None:
    up = hastack(standby_spec, "up", "--json")
    assert up.code == 0, up.err
    assert up.json()["up"]["standby_of"] == stack.plan.name
    dr = load_spec(standby_spec).plan
    assert [n.name for n in dr.postgres_nodes] == ["dr1", "dr2", "dr3"]

    report = hastack(standby_spec, "status", "--json").json()
    assert report["health"] == "healthy", report["problems"]
    assert report["standby"]["primary"] == stack.plan.name
    assert report["standby"]["primary_reachable"] is True
    roles = sorted(m["role"] for m in report["postgres"])
    assert roles == ["replica", "replica", "standby_leader"]

    # An acknowledged write on the primary reaches the standby's read-only endpoint.
    stack.ensure_scratch_table()
    marker = uuid.uuid4().hex
    with psycopg.connect(stack.run("env", "--json").json()["DATABASE_URL"]) as conn:
        conn.execute("INSERT INTO it_rows VALUES (%s, 7)", (marker,))
    dr_env = hastack(standby_spec, "env", "--json").json()
    seen = None
    for _ in range(50):
        with psycopg.connect(dr_env["DATABASE_URL_RO"], prepare_threshold=None) as conn:
            seen = conn.execute("SELECT v FROM it_rows WHERE id = %s", (marker,)).fetchone()
        if seen:
            break
        time.sleep(0.2)
    assert seen == (7,)

    _wal_comes_from_the_primarys_repository_while_the_link_is_cut(stack, standby_spec)

    refused = hastack(standby_spec, "promote-standby", "--yes")
    assert refused.code != 0
    assert "two primaries" in " ".join(refused.err.split()), refused.err

    # The primary's region is lost under write load; the drill promotes the standby.
    drill = hastack(standby_spec, "drill", "run", "region-loss", "--json", timeout_s=900)
    report = json.loads(drill.out)
    assert drill.code == 0, (report.get("failure_reasons"), drill.err[-3000:])
    assert report["passed"] is True and report["error"] is None
    checker = report["checker"]
    assert checker["invariant_ok"] and checker["converged"] and not checker["duplicates"]
    assert report["split_brain"] is False
    rpo = next(e for e in report["expectations"] if str(e["what"]).startswith("RPO:"))
    assert rpo["ok"] is True, rpo
    assert report["healthy_again_s"] is not None

    with psycopg.connect(dr_env["DATABASE_URL"], prepare_threshold=None) as conn:
        assert conn.execute("SELECT v FROM it_rows WHERE id = %s", (marker,)).fetchone() == (7,)
        conn.execute("INSERT INTO it_rows VALUES (%s, 8)", (uuid.uuid4().hex,))
    after = hastack(standby_spec, "status", "--json").json()
    assert after["health"] == "healthy", after["problems"]
    assert after["standby"] is None
    assert "leader" in [m["role"] for m in after["postgres"]]
    assert after["backups"]["last"]["full"], "the promoted cluster took no full backup"

    # The old primary, once its region is back, must not start as a second primary.
    revived = stack.run("up")
    assert revived.code == 1, revived.out
    assert "was superseded" in " ".join(revived.err.split()), revived.err

    again = hastack(standby_spec, "promote-standby", "--yes")
    assert again.code != 0
    assert "already a primary" in " ".join(again.err.split()), again.err


def _standby_leader_has(dr: StackHandle, leader: str, marker: str) -> bool:
    with dr.connect(leader) as conn:
        return conn.execute("SELECT 1 FROM it_rows WHERE id = %s", (marker,)).fetchone() is not None


def _receiving(dr: StackHandle, leader: str) -> bool:
    with dr.connect(leader) as conn:
        return conn.execute("SELECT 1 FROM pg_stat_wal_receiver").fetchone() is not None


def _wal_comes_from_the_primarys_repository_while_the_link_is_cut(
    stack: Stack, standby_spec: Path
) -> None:
    """The link between the regions is cut (the relay stopped and kept down): nothing
    streams, and the standby leader still replays what the primary archived, from the
    primary's repository. Once the link is back it streams again by itself."""
    dr = StackHandle(load_spec(standby_spec).plan)
    leader = dr.leader()
    assert leader is not None
    with dr.hold(300, "test: the link between the regions is cut", scope=["wan-link:wan-link"]):
        dr.supervisor.stop("wan-link:wan-link")
        dr.until(lambda: not _receiving(dr, leader), what="streaming stopped", timeout_s=30)
        marker = uuid.uuid4().hex
        with psycopg.connect(stack.run("env", "--json").json()["DATABASE_URL"]) as conn:
            conn.execute("INSERT INTO it_rows VALUES (%s, 9)", (marker,))
        with stack.hs.connect(stack.status()[1]["leader_key"]) as conn:
            conn.execute("SELECT pg_switch_wal()")  # the segment holding it is archived
        dr.until(
            lambda: _standby_leader_has(dr, leader, marker),
            what="the row replayed from the primary's repository",
            timeout_s=60,
        )
        assert not _receiving(dr, leader)  # not streamed: the link is still cut
    dr.until(
        lambda: _receiving(dr, leader), what="streaming again once the link is back", timeout_s=60
    )
