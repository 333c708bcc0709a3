"""The pure parts of `hastack deploy`: health of a Swarm stack's tasks, what a drill promises
in containers, the request handed to a container, the mirror the image's base comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hastack.drills.scenarios import (
    RUN_IN_LAB,
    RUN_ON_CONTAINERS,
    SCENARIOS,
    Scenario,
    available,
    for_stack,
)
from hastack.errors import HastackError
from hastack.ops.container_init import request
from hastack.ops.deploy import deploy
from hastack.runtime.containers import assess, service_names
from hastack.runtime.image import debian_mirror
from hastack.runtime.stack import Stack
from hastack.tools.docker import Container
from tests.unit.factories import fixed_secrets, load_text


def _task(service: str, state: str = "running", health: str = "healthy") -> Container:
    return Container(id=service, name=f"{service}.1.x", service=service, state=state, health=health)


def test_a_service_counts_once_a_task_runs_and_passes_its_check() -> None:
    expected = ["pg1-etcd", "pg1-patroni", "haproxy", "backup-scheduler"]
    health = assess(
        "hs",
        expected,
        [
            _task("hs_pg1-etcd"),
            _task("hs_pg1-patroni", health="starting"),
            _task("hs_haproxy", state="exited", health=""),
            _task("hs_backup-scheduler", health=""),  # no health check: running is enough
            _task("other_haproxy"),  # another stack's
        ],
    )
    assert health.healthy == ("pg1-etcd", "backup-scheduler")
    assert health.waiting == ("pg1-patroni", "haproxy")
    assert not health.ready
    assert health.sentence() == "2 of 4 healthy; waiting for pg1-patroni, haproxy"
    done = assess("hs", ["haproxy"], [_task("hs_haproxy")])
    assert done.ready and done.sentence() == "all 1 services healthy"


def test_the_services_waited_for_are_the_renders(tmp_path: Path) -> None:
    plan = load_text(tmp_path, "target: swarm\n").plan
    names = service_names(plan)
    assert {"pg1-etcd", "pg3-patroni", "haproxy", "pgbouncer", "redis", "app2"} <= set(names)
    assert not any("fencer" in n for n in names)  # no watcher in containers


def test_node_loss_promises_no_leader_change_in_containers() -> None:
    node_loss = SCENARIOS["node-loss"]
    assert node_loss.expect.leader_changes is True
    assert for_stack(node_loss, "machine") is node_loss
    moved = for_stack(node_loss, "containers")
    assert moved.expect.leader_changes is None and not moved.expect.alerts.fires
    kill = SCENARIOS["kill-postmaster"]
    assert for_stack(kill, "containers") is kill


def test_a_drill_without_a_container_driver_is_refused_on_containers() -> None:
    assert set(RUN_ON_CONTAINERS) <= set(SCENARIOS)
    patroni = SCENARIOS["kill-patroni"]
    assert for_stack(patroni, "machine") is patroni
    with pytest.raises(HastackError, match="does not run on a container engine") as refused:
        for_stack(patroni, "containers")
    assert "node-loss" in refused.value.hint
    assert not available(SCENARIOS["pooler-restart"], "containers")
    assert available(SCENARIOS["pooler-restart"], "machine")


def test_host_drills_run_in_the_lab_only_and_the_lab_runs_what_it_can() -> None:
    assert set(RUN_IN_LAB) <= set(SCENARIOS)
    for name in ("host-loss", "host-partition", "slow-link"):
        host = SCENARIOS[name]
        assert for_stack(host, "lab") is host and not host.pinned_writer
        for venue in ("machine", "containers"):
            assert not available(host, venue)  # type: ignore[arg-type]
        with pytest.raises(HastackError, match="runs in the lab only") as refused:
            for_stack(host, "machine")
        assert "hastack lab up" in refused.value.hint
    # iptables in this machine's namespace cuts nothing between the lab's hosts.
    with pytest.raises(HastackError, match="does not run in the lab") as refused:
        for_stack(SCENARIOS["partition-primary"], "lab")
    assert "host-partition" in refused.value.hint
    assert available(SCENARIOS["switchover"], "lab")
    # A scenario made on the spot (a test's, a user's) runs on one machine.
    made = Scenario("made-here", "a fault of a test", inject=lambda _ctx: None)
    assert for_stack(made, "machine") is made


def test_the_container_request_carries_the_spec_and_every_secret(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "target: swarm\nname: box\n")
    sent = json.loads(request(loaded.spec, fixed_secrets(), "database", "pg2"))
    assert sent["spec"]["name"] == "box" and sent["spec"]["target"] == "swarm"
    assert sent["secrets"]["postgres_password"] == fixed_secrets().postgres_password
    assert (sent["step"], sent["leader"]) == ("database", "pg2")


def test_deploy_refuses_a_target_the_spec_does_not_name(tmp_path: Path) -> None:
    plan = load_text(tmp_path, "target: swarm\n").plan
    with pytest.raises(HastackError, match="the spec's target is swarm, not compose"):
        deploy(Stack(plan), "compose")
    local = load_text(tmp_path, "name: here\n").plan
    with pytest.raises(HastackError, match="target is local, not swarm"):
        deploy(Stack(local), "swarm")


def test_the_base_image_comes_from_this_machines_mirror(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    assert debian_mirror(sources) == "http://mirror.example/debian"
    with pytest.raises(HastackError, match="is missing"):
        debian_mirror(tmp_path / "none")
