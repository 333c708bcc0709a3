"""The same spec on Docker Compose (one host): `hastack deploy` with `target: compose` builds
the image, gives the mounted files their owners, `docker-compose up`s the services, waits
until each is healthy and converges the database and the first backup; status and writes
work; a crashed PostgreSQL is restarted by the engine (Compose restarts a killed process,
not a `docker kill`); `hastack destroy` removes the services and their volumes.

Skipped only where dockerd cannot start here, and then the skip says why."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import psycopg
import pytest

from hastack.runtime.stack import Stack as StackHandle
from hastack.spec import load_spec
from tests.integration.conftest import Stack, hastack
from tests.integration.docker_engine import EngineDidNotStart, docker, engine

NAME = "hscompose"
SUBNET = "127.0.215.0/24"


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    spec = tmp_path_factory.mktemp("compose") / "hastack.yaml"
    spec.write_text(f"name: {NAME}\ntarget: compose\nnetwork:\n  subnet: {SUBNET}\n")
    plan = load_spec(spec).plan
    try:
        with engine() as host:
            os.environ["DOCKER_HOST"] = host
            stale = docker("volume", "ls", "-q", "--filter", f"name={NAME}_").stdout.split()
            if stale:
                docker("rm", "--force", *docker("ps", "-aq").stdout.split())
                docker("volume", "rm", "--force", *stale)
            deployed = hastack(spec, "deploy", "--json", timeout_s=900)
            try:
                assert deployed.code == 0, deployed.err[-4000:]
                yield Stack(spec, plan, deployed.json(), traces=None)  # type: ignore[arg-type]
            finally:
                destroyed = hastack(spec, "destroy", "--yes", timeout_s=300)
                os.environ.pop("DOCKER_HOST", None)
                assert destroyed.code == 0, destroyed.err[-2000:]
                left = docker("volume", "ls", "-q", "--filter", f"name={NAME}_").stdout.split()
                assert not left, left
    except EngineDidNotStart as exc:
        pytest.skip(f"NOT TESTED: no Docker engine can start on this machine: {exc}")


def test_deploy_on_compose_comes_up_healthy_and_writable(composed: Stack) -> None:
    report = composed.up["deploy"]
    print(
        f"\ncompose deploy: {report['services']} services healthy {report['healthy_after_s']} s "
        f"after `docker-compose up`, {report['elapsed_s']} s in all"
    )
    assert report["target"] == "compose" and report["services"] >= 20
    assert composed.up["status"]["health"] == "healthy", composed.up["status"]["problems"]
    env = composed.run("env", "--json").json()
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        conn.execute("CREATE TEMP TABLE t (v int)")
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        # The demo's migrations ran inside the leader's container.
        assert conn.execute("SELECT to_regclass('work_orders')").fetchone() == ("work_orders",)


def test_a_killed_postmaster_is_brought_back(composed: Stack) -> None:
    handle = StackHandle(composed.plan)
    leader = handle.leader()
    assert leader is not None
    replica = next(n for n in composed.plan.postgres_nodes if n.name != leader)
    pid = handle.postmaster_pid(replica)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # Patroni (the container's main process) starts PostgreSQL again; the stack heals.
    handle.until(
        lambda: (p := handle.postmaster_pid(replica)) is not None and p != pid,
        what=f"a new postmaster on {replica.name}",
        timeout_s=60,
    )
    handle.until(lambda: handle.assess().healthy, what="the stack healthy again", timeout_s=90)
