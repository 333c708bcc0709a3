"""The spec's hosts as namespaces: which /24 the lab is, where each program runs, and the
supervisord line that puts it there (runtime/hostlab.py, render/supervisord.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hastack.errors import HastackError
from hastack.render.programs import stack_programs
from hastack.render.supervisord import render_supervisord
from hastack.runtime.hostlab import host_lan, lab_subnet, program_namespaces
from tests.unit.factories import load_text

SPEC = """\
name: lab
target: systemd
hosts:
  - {name: db1, address: 10.213.1.1}
  - {name: db2, address: 10.213.1.2}
  - {name: db3, address: 10.213.1.3, runs: [pg3, backup]}
"""


def test_the_lab_is_the_hosts_24_and_each_program_runs_on_its_host(tmp_path: Path) -> None:
    plan = load_text(tmp_path, SPEC).plan
    assert lab_subnet(plan) == "10.213.1.0/24"
    lan = host_lan(plan)
    where = program_namespaces(plan, lan)
    assert where["pg2-patroni"] == "/run/netns/hs-lab-db2"
    assert where["pg1-postgres-exporter"] == "/run/netns/hs-lab-db1"
    assert where["backup-repo"] == "/run/netns/hs-lab-db3"
    assert where["haproxy"] == "/run/netns/hs-lab-db1"  # the services go to the first host
    assert set(where) == {p.name for p in stack_programs(plan)}


def test_a_program_in_a_namespace_is_started_as_root_and_drops_to_its_user(
    tmp_path: Path,
) -> None:
    plan = load_text(tmp_path, SPEC).plan
    programs = stack_programs(plan)
    config = render_supervisord(plan, programs, program_namespaces(plan, host_lan(plan)))
    section = config.split("[program:pg2-patroni]")[1].split("[program:")[0]
    node = plan.node("pg2")
    assert "command=/usr/bin/nsenter --net=/run/netns/hs-lab-db2 -- /usr/bin/setpriv" in section
    assert f"--reuid={node.user} --regid={node.user} --clear-groups --" in section
    assert "\nuser=root\n" in section and f'USER="{node.user}"' in section
    # On one machine nothing changes.
    plain = render_supervisord(plan, programs)
    assert "nsenter" not in plain and f"\nuser={node.user}\n" in plain


def _three(addresses: str) -> str:
    return "".join(
        f"  - {{name: h{i}, address: {a}}}\n" for i, a in enumerate(addresses.split(), 1)
    )


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (_three("10.1.1.1 10.1.1.2 10.1.2.1"), "share one /24"),
        (_three("127.0.50.1 127.0.50.2 127.0.50.3"), "on loopback"),
    ],
)
def test_hosts_a_lab_cannot_hold_are_refused(tmp_path: Path, hosts: str, message: str) -> None:
    plan = load_text(tmp_path, f"name: lab\ntarget: systemd\nhosts:\n{hosts}").plan
    with pytest.raises(HastackError, match=message):
        lab_subnet(plan)


def test_a_single_machine_stack_has_no_lab(tmp_path: Path) -> None:
    with pytest.raises(HastackError, match="no hosts to simulate"):
        lab_subnet(load_text(tmp_path, "name: one\n").plan)
