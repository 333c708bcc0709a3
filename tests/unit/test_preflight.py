from __future__ import annotations

import tempfile
from pathlib import Path

from hastack.runtime.preflight import (
    Listener,
    check_paths,
    check_ports,
    check_programs,
    ports_held,
)
from hastack.spec import StackSpec, derive_plan
from hastack.spec.model import BinariesSpec

PLAN = derive_plan(StackSpec())


def test_a_foreign_listener_on_our_port_is_named() -> None:
    others = [Listener("127.0.10.100", 6432, 4242, "pgbouncer", "postgres")]
    (problem,) = check_ports(PLAN, others)
    assert "port 6432 on 127.0.10.100 (pgbouncer.port) is in use by pid 4242" in problem.what
    assert "(pgbouncer, user postgres)" in problem.what
    assert "pgbouncer.port" in problem.fix


def test_wildcard_listeners_conflict_too() -> None:
    others = [
        Listener("0.0.0.0", 5432, 7, "postgres", "postgres"),
        Listener("::", 2379, 8, "etcd", "etcd"),
    ]
    found = [p.what for p in check_ports(PLAN, others)]
    # 3 nodes and the scratch restores' address x postgres.port, 3 members x etcd.client_port
    assert len(found) == 7
    assert any("port 5432 on 127.0.10.2 (postgres.port)" in w for w in found)
    assert any("port 5432 on 127.0.10.105 (postgres.port)" in w for w in found)


def test_other_addresses_and_our_own_processes_do_not_conflict() -> None:
    others = [
        Listener("127.0.0.1", 5432, 7, "postgres", "postgres"),  # Debian's default cluster
        Listener("127.0.10.1", 5432, 9, "postgres", "hs-demo-pg1"),  # this stack, running
    ]
    assert check_ports(PLAN, others) == []


def test_a_listener_seen_without_its_holder_once_is_asked_again() -> None:
    """A socket opened while the listeners were read shows without a holder (pid None):
    the second look finds it held by the stack's own user."""
    reads = iter(
        [
            [Listener("127.0.10.1", 8008, None, "?", "?")],
            [Listener("127.0.10.1", 8008, 11, "patroni", "hs-demo-pg1")],
        ]
    )
    pauses: list[float] = []
    assert ports_held(PLAN, lambda: next(reads), pauses.append) == []
    assert len(pauses) == 1


def test_a_port_still_held_by_someone_else_is_a_problem() -> None:
    foreign = [Listener("127.0.10.100", 6432, 4242, "pgbouncer", "postgres")]
    (problem,) = ports_held(PLAN, lambda: foreign, lambda _s: None)
    assert "pid 4242" in problem.what


def test_free_ports_are_read_once() -> None:
    reads: list[int] = []

    def read() -> list[Listener]:
        reads.append(1)
        return []

    assert ports_held(PLAN, read, lambda _s: None) == []
    assert reads == [1]


def test_missing_program_names_the_package(tmp_path: Path) -> None:
    spec = StackSpec(binaries=BinariesSpec(haproxy=tmp_path / "haproxy"))
    problems = [p for p in check_programs(derive_plan(spec)) if "haproxy" in p.what]
    (problem,) = problems
    assert "binaries.haproxy" in problem.what
    assert "apt-get install haproxy" in problem.fix


def test_state_dir_must_be_reachable_by_node_users() -> None:
    private = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))  # mode 0700, like /root
    try:
        plan = derive_plan(StackSpec(state_dir=private / "stack"))
        (problem,) = check_paths(plan)
        assert f"{private} is not searchable by other users" in problem.what
    finally:
        private.rmdir()


def test_state_dir_too_long_for_sockets() -> None:
    plan = derive_plan(StackSpec(state_dir=Path("/srv/" + "x" * 90)))
    assert any("too long for unix sockets" in p.what for p in check_paths(plan))
