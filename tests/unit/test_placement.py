"""Hosts in the spec: where each unit runs, the addresses it gets, and placements that defeat HA."""

from __future__ import annotations

from pathlib import Path

import pytest

from hastack.errors import HastackError
from hastack.ops.plan import plan_as_dict, plan_sections
from hastack.ops.up import up
from hastack.runtime.stack import Stack
from hastack.spec import SpecError
from tests.unit.factories import load_text

THREE_HOSTS = """\
target: systemd
hosts:
  - {name: db1, address: 10.0.0.11}
  - {name: db2, address: 10.0.0.12}
  - {name: db3, address: 10.0.0.13}
"""


def issues_of(tmp_path: Path, text: str) -> list[str]:
    try:
        loaded = load_text(tmp_path, text)
    except SpecError as exc:
        return [i.format() for i in exc.issues]
    return [w.format() for w in loaded.warnings]


def test_three_hosts_place_one_node_per_host_and_services_first(tmp_path: Path) -> None:
    plan = load_text(tmp_path, THREE_HOSTS).plan
    assert [h.units for h in plan.hosts] == [
        ("pg1", "app1", "services", "monitoring"),
        ("pg2", "app2"),
        ("pg3", "backup"),
    ]
    assert [n.address for n in plan.nodes] == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert plan.services_address == plan.monitor_address == "10.0.0.11"
    assert plan.backup_address == "10.0.0.13"
    assert [(a.address, a.port) for a in plan.app_instances] == [
        ("10.0.0.11", 8000),
        ("10.0.0.12", 8000),
    ]
    # The repository shares db3 with pg3, whose own pgBackRest server and PostgreSQL hold
    # the spec's ports: the repository's take the next ones.
    assert (plan.repo_port, plan.scratch_port) == (8433, 5433)
    assert plan.etcd_client_urls == tuple(f"https://10.0.0.1{i}:2379" for i in (1, 2, 3))


def test_a_single_machine_plan_keeps_its_loopback_addresses(tmp_path: Path) -> None:
    plan = load_text(tmp_path, "network:\n  subnet: 127.0.50.0/24\n").plan
    assert plan.hosts == ()
    assert plan.node("pg2").address == "127.0.50.2"
    assert (plan.services_address, plan.backup_address, plan.monitor_address) == (
        "127.0.50.100",
        "127.0.50.105",
        "127.0.50.106",
    )
    assert plan.repo_port == 8432 and plan.scratch_port == 5432
    assert plan.host_of("pg1") is None


def test_named_units_stay_where_the_spec_puts_them(tmp_path: Path) -> None:
    text = THREE_HOSTS.replace("10.0.0.13}", "10.0.0.13, runs: [services, app1, app2]}")
    plan = load_text(tmp_path, text).plan
    assert plan.services_address == "10.0.0.13"
    db3 = plan.host_of("services")
    assert db3 is not None and db3.name == "db3"
    # Two instances on one host share its address: each gets its own port.
    assert [(a.address, a.port) for a in plan.app_instances] == [
        ("10.0.0.13", 8000),
        ("10.0.0.13", 8001),
    ]


def test_a_fourth_host_keeps_the_repository_on_its_own_ports(tmp_path: Path) -> None:
    text = THREE_HOSTS + "  - {name: vault, address: 10.0.0.20, runs: [backup]}\n"
    plan = load_text(tmp_path, text).plan
    assert plan.backup_address == "10.0.0.20"
    assert (plan.repo_port, plan.scratch_port) == (8432, 5432)


def test_plan_shows_the_placement(tmp_path: Path) -> None:
    plan = load_text(tmp_path, THREE_HOSTS).plan
    rows = plan_sections(plan)["hosts"]
    assert [(r.key, r.value) for r in rows][:2] == [("target", "systemd"), ("db1", "10.0.0.11")]
    assert "pg1 (placed by hastack)" in rows[1].how and "services" in rows[1].how
    hosts = plan_as_dict(plan)["derived"]["hosts"]  # type: ignore[index]
    assert hosts[2] == {"name": "db3", "address": "10.0.0.13", "units": ["pg3", "backup"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            THREE_HOSTS.replace("10.0.0.13}", "10.0.0.13}\n  - {name: db4, address: 10.0.0.11}"),
            ["hastack.yaml:6: hosts.3.address: 10.0.0.11 is also the address of host 'db1'"],
        ),
        (
            THREE_HOSTS.replace("10.0.0.12}", "10.0.0.12, runs: [pg9]}"),
            ["hastack.yaml:4: hosts.1.runs.0: this stack has no unit 'pg9'"],
        ),
        (
            THREE_HOSTS.replace("10.0.0.12}", "10.0.0.12, runs: [servces]}"),
            ["did you mean 'services'?"],
        ),
        (
            THREE_HOSTS.replace("10.0.0.11}", "10.0.0.11, runs: [pg1, pg2]}").replace(
                "10.0.0.12}", "10.0.0.12, runs: [pg2]}"
            ),
            [
                "hosts.1.runs.0: pg2 is also placed on host 'db1'",
                "host 'db1' runs 2 PostgreSQL nodes (pg1, pg2) while 3 hosts allow at most 1",
                "host 'db1' runs 2 of 3 etcd members: losing it leaves 1, short of the quorum",
            ],
        ),
        (
            "target: systemd\nhosts:\n  - {name: a, address: 10.0.0.1}\n"
            "  - {name: b, address: 10.0.0.2}\n",
            [
                "hastack.yaml:3: hosts.0.runs: host 'a' runs 2 of 3 etcd members",
                "add a third for the third member",
            ],
        ),
        (
            "target: systemd\nhosts:\n  - {name: a, address: 10.0.0.1}\n",
            [
                "warning: hosts: one host: the stack survives losing a process, not losing the",
                "pg2 and pg1 would both listen on port 2379, 2380, 2381, 5432, 8008, 8432, 9187",
                "a host runs one node",
            ],
        ),
        ("target: systemd\n", ["hosts: target systemd needs the hosts to render units for"]),
        (
            "hosts:\n  - {name: a, address: 10.0.0.1}\n",
            ["target local runs every component on this machine's loopback"],
        ),
        (
            THREE_HOSTS.replace("systemd", "kubernetes"),
            ["Kubernetes places the pods itself"],
        ),
        (
            THREE_HOSTS.replace("systemd", "compose"),
            ["Compose runs on one host, and 3 are listed"],
        ),
        (
            THREE_HOSTS.replace("10.0.0.12}", "db2.internal}"),
            ["hastack.yaml:4: hosts.1.address: 'db2.internal': not an IP address"],
        ),
        (
            "target: nomad\n",
            ["hastack.yaml:1: target:"],
        ),
    ],
)
def test_bad_placements_are_refused_with_their_line(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    found = issues_of(tmp_path, text)
    joined = "\n".join(found)
    for want in expected:
        assert want in joined, joined


def test_a_witness_beside_a_node_collides_on_its_host(tmp_path: Path) -> None:
    text = THREE_HOSTS.replace("10.0.0.13}", "10.0.0.13, runs: [pg3, dcs4]}").replace(
        "target: systemd\n", "target: systemd\netcd:\n  members: 5\n"
    )
    joined = "\n".join(issues_of(tmp_path, text))
    assert "on host 'db3' (10.0.0.13), dcs4 and pg3 would both listen on port 2379, 2380" in (
        joined
    )


def test_up_refuses_a_spec_for_another_target(tmp_path: Path) -> None:
    plan = load_text(tmp_path, THREE_HOSTS).plan
    with pytest.raises(HastackError) as caught:
        up(Stack(plan))
    assert "target systemd" in str(caught.value) and "hastack render systemd" in str(
        caught.value.hint
    )
