"""The systemd placement checked on hosts made of network namespaces (`hastack lab`): a spec
with an edge host (HAProxy, PgBouncer, Redis, the app instances, the repository) and three
database hosts, each program started in its host's namespace, every link between hosts a
real one. The stack comes up healthy and writable across the hosts, the backup's scratch
verification runs on the repository's host, and the drill host-loss powers off the
primary's host: the watcher fences it with the spec's fence command (`hastack lab
power-off`), a new leader takes over with no acknowledged write lost, and the watcher
brings the host back with the unfence command. host-partition and slow-link run with
`-m slow`. Numbers are printed, never asserted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.spec import load_spec
from hastack.tools.netns import NETNS_DIR
from tests.integration.conftest import KEPT_LOGS, Result, hastack, keep_logs

NAME = "hslabit"
LAN = "10.213.79"
STATE_DIR = Path("/var/lib/hastack") / NAME
PYTHON = "/opt/hastack/venv/bin/python"

SPEC = f"""\
name: {NAME}
state_dir: {STATE_DIR}
target: systemd
network:
  subnet: 127.0.217.0/24
monitoring:
  enabled: false
hosts:
  - {{name: edge, address: {LAN}.10, runs: [services, backup, app1, app2]}}
  - {{name: db1, address: {LAN}.1, runs: [pg1]}}
  - {{name: db2, address: {LAN}.2, runs: [pg2]}}
  - {{name: db3, address: {LAN}.3, runs: [pg3]}}
fencing:
  command: {PYTHON} -m hastack lab power-off "$HASTACK_FENCE_HOST"
  unfence_command: {PYTHON} -m hastack lab power-on "$HASTACK_FENCE_HOST"
"""


def _namespaces() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob(f"hs-{NAME}-*")) if NETNS_DIR.is_dir() else []


def _ok(result: Result, what: str) -> Result:
    assert result.code == 0, f"{what}: {result.err[-4000:]}\n{result.out[-2000:]}"
    return result


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    spec = tmp_path_factory.mktemp("lab") / "hastack.yaml"
    spec.write_text(SPEC)
    # An interrupted run's leftovers: its stack, then its lab.
    if STATE_DIR.exists():
        hastack(spec, "destroy", "--yes", timeout_s=300)
    hastack(spec, "lab", "down")
    made = _ok(hastack(spec, "lab", "up", "--json"), "lab up").json()
    assert made["created"] and made["seat"] == f"{LAN}.254"
    try:
        _ok(hastack(spec, "up", timeout_s=600), "hastack up on the lab")
        yield spec
    finally:
        keep_logs(STATE_DIR, KEPT_LOGS.with_name(KEPT_LOGS.name + "-lab"))
        destroyed = hastack(spec, "destroy", "--yes", timeout_s=300)
        down = hastack(spec, "lab", "down")
        assert destroyed.code == 0, destroyed.err[-2000:]
        assert down.code == 0, down.err[-2000:]
        assert _namespaces() == []


def test_the_stack_runs_across_the_lab_hosts_and_is_healthy(lab: Path) -> None:
    status = _ok(hastack(lab, "status", "--json"), "status").json()
    assert status["health"] == "healthy", status.get("problems")
    addresses = {m["name"]: m["host"] for m in status["postgres"]}
    assert addresses == {f"pg{i}": f"{LAN}.{i}" for i in (1, 2, 3)}
    hosts = {h["name"]: h for h in _ok(hastack(lab, "lab", "status", "--json"), "").json()}
    assert all(h["on"] and h["plugged"] and h["processes"] > 0 for h in hosts.values())
    # Each program runs in its host's namespace: PostgreSQL of pg2 only on db2.
    plan = load_spec(lab).plan
    assert "pg2:pg2-patroni" in hosts["db2"]["programs"]
    assert "haproxy:haproxy" in hosts["edge"]["programs"]
    assert all("pg2:pg2-patroni" not in hosts[h]["programs"] for h in ("edge", "db1", "db3"))
    repository = plan.host_of("backup")
    assert repository is not None and repository.name == "edge"


def test_a_refused_host_command_says_which_hosts_exist(lab: Path) -> None:
    refused = hastack(lab, "lab", "power-off", "db9")
    assert refused.code == 1 and "no host 'db9'" in refused.err and "db1" in refused.err


def test_host_loss_is_fenced_by_the_command_and_heals_by_itself(lab: Path) -> None:
    ran = hastack(lab, "drill", "run", "host-loss", "--json", timeout_s=600)
    report = json.loads(ran.out)
    print(
        f"\nhost-loss on the lab: write gap {report['write_gap_s']} s, "
        f"{report['rpo_lost_acked_writes']} lost of {report['acked_writes']} acknowledged, "
        f"{report['old_primary']} -> {report['new_primary']}, healthy again after "
        f"{report['healthy_again_s']} s"
    )
    assert ran.code == 0 and report["passed"], report.get("failure_reasons") or report["error"]
    assert report["rpo_lost_acked_writes"] == 0 and not report["split_brain"]
    said = [e["text"] for e in report["timeline"] if e["kind"] == "fencer"]
    assert any("fencing.command fenced its host" in s for s in said), said
    assert any(f"starting {report['old_primary']}'s host" in s for s in said), said
    # The checker saw every node's role (the nodes admit the operator's seat).
    roles = [e for e in report["timeline"] if e["kind"] == "role"]
    assert any(e["text"].endswith(": primary") for e in roles), roles


@pytest.mark.slow
@pytest.mark.parametrize("drill", ["host-partition", "slow-link"])
def test_the_other_host_drills_pass(lab: Path, drill: str) -> None:
    ran = hastack(lab, "drill", "run", drill, "--json", timeout_s=600)
    report = json.loads(ran.out)
    print(
        f"\n{drill} on the lab: write gap {report['write_gap_s']} s, "
        f"{report['rpo_lost_acked_writes']} lost, healthy again after "
        f"{report['healthy_again_s']} s"
    )
    assert ran.code == 0 and report["passed"], report.get("failure_reasons") or report["error"]
