from __future__ import annotations

from pathlib import Path

import pytest

from hastack.spec import MachineFacts, SpecError
from tests.unit.factories import load_text


def issues_of(tmp_path: Path, text: str, machine: MachineFacts | None = None) -> list[str]:
    try:
        loaded = load_text(tmp_path, text, machine)
    except SpecError as exc:
        return [i.format() for i in exc.issues]
    return [w.format() for w in loaded.warnings]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("etcd:\n  members: 4\n", ["hastack.yaml:2: etcd.members: 4 members tolerate"]),
        ("etcd:\n  members: 1\n", ["warning: etcd.members: a single etcd member"]),
        (
            "postgres:\n  nodes: 1\n",
            ["postgres.synchronous_mode: synchronous mode needs at least one replica"],
        ),
        (
            "postgres:\n  nodes: 2\n  synchronous_mode_strict: true\n",
            ["postgres.synchronous_mode_strict: with one replica, strict"],
        ),
        ("postgres:\n  nodes: 2\n", ["warning: postgres.nodes: with one replica"]),
        (
            "postgres:\n  synchronous_mode: false\n",
            ["warning: postgres.synchronous_mode: asynchronous replication"],
        ),
        (
            "patroni:\n  ttl_s: 20\n  retry_timeout_s: 10\n",
            ["patroni.ttl_s: loop_wait_s + 2 x retry_timeout_s = 22 s exceeds ttl_s = 20 s"],
        ),
        (
            "etcd:\n  heartbeat_interval_ms: 500\n",
            ["etcd.election_timeout_ms: 1000 ms is less than 5x the heartbeat"],
        ),
        (
            "postgres:\n  max_connections: 50\n",
            ["hastack.yaml:2: postgres.max_connections: 50 is below what PgBouncer may open"],
        ),
        (
            "pgbouncer:\n  server_connect_timeout_s: 5\n",
            ["hastack.yaml:2: pgbouncer.server_connect_timeout_s: 5 s is not longer than"],
        ),
        ("haproxy:\n  hold_new_connections_s: 0\npgbouncer:\n  server_connect_timeout_s: 2\n", []),
        (
            "postgres:\n  parameters:\n    port: 6000\n    work_mem: 8MB\n",
            ["hastack.yaml:3: postgres.parameters.port: is managed by hastack"],
        ),
    ],
)
def test_cross_field_rules(tmp_path: Path, text: str, expected: list[str]) -> None:
    found = issues_of(tmp_path, text)
    assert len(found) == len(expected), found
    for got, want in zip(found, expected, strict=True):
        assert want in got


def test_port_collision_points_at_the_key_the_file_sets(tmp_path: Path) -> None:
    (issue,) = issues_of(tmp_path, "name: demo\nhaproxy:\n  rw_port: 6432\n")
    assert (
        "hastack.yaml:3: pgbouncer.port: port 6432 is also haproxy.rw_port on 127.0.10.100" in issue
    )


def test_node_port_collision(tmp_path: Path) -> None:
    (issue,) = issues_of(tmp_path, "patroni:\n  rest_port: 2379\n")
    assert "etcd.client_port: port 2379 is also patroni.rest_port on each node address" in issue
    assert "hastack.yaml:2" in issue


def test_memory_must_fit_the_machine(tmp_path: Path) -> None:
    small = MachineFacts(memory_mb=2048, cpus=2)
    (issue,) = issues_of(tmp_path, "postgres:\n  memory_mb: 1024\n", small)
    assert "hastack.yaml:2: postgres.memory_mb: 3 nodes x 1024 MB" in issue
    assert "set postgres.memory_mb to 493 or less" in issue
    assert issues_of(tmp_path, "postgres:\n  memory_mb: 493\n", small) == []


def test_defaults_fit_a_small_vps(tmp_path: Path) -> None:
    assert issues_of(tmp_path, "", MachineFacts(memory_mb=2048, cpus=1)) == []
