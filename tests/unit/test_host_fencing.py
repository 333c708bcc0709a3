"""Fencing on separate hosts, the pure parts: how a probe tells a host that takes no
connection from a process that is only silent, which standby the watcher hands the leader
key to, and who the nodes admit when the hosts are simulated here."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import httpx
import pytest

from hastack.render.patroni import pg_hba
from hastack.runtime.probes import _http_failure
from hastack.runtime.watcher import _sync_standby
from hastack.tools.base import _already_in
from tests.unit.factories import load_text


def _no_route() -> httpx.ConnectError:
    try:
        raise OSError(errno.EHOSTUNREACH, "No route to host")
    except OSError as cause:
        try:
            raise httpx.ConnectError("[Errno 113] No route to host") from cause
        except httpx.ConnectError as exc:
            return exc


@pytest.mark.parametrize(
    ("failure", "probe"),
    [
        pytest.param(httpx.ConnectTimeout("no handshake"), "unreachable", id="no-handshake"),
        pytest.param(_no_route(), "unreachable", id="no-route"),
        pytest.param(httpx.ConnectError("Connection refused"), "refused", id="refused"),
        pytest.param(httpx.ReadTimeout("no answer"), "timeout", id="connected-no-answer"),
    ],
)
def test_a_probe_tells_a_host_gone_from_a_process_gone_or_silent(
    failure: httpx.HTTPError, probe: str
) -> None:
    assert _http_failure(failure) == probe


@pytest.mark.parametrize(
    ("sync", "candidate"),
    [
        pytest.param('{"leader":"pg2","quorum":0,"sync_standby":"pg3"}', "pg3", id="one"),
        pytest.param('{"leader":"pg1","sync_standby":"pg3"}', None, id="another-leader"),
        pytest.param('{"leader":"pg2","sync_standby":"pg1,pg3"}', None, id="several"),
        pytest.param('{"leader":"pg2","sync_standby":null}', None, id="none"),
        pytest.param(None, None, id="no-key"),
        pytest.param("garbage", None, id="garbage"),
    ],
)
def test_the_key_is_handed_only_to_the_one_synchronous_standby_of_that_leader(
    sync: str | None, candidate: str | None
) -> None:
    assert _sync_standby(sync, "pg2") == candidate


def test_the_nodes_admit_the_operators_seat_only_when_given(tmp_path: Path) -> None:
    spec = "name: lab\ntarget: systemd\nhosts:\n" + "".join(
        f"  - {{name: db{i}, address: 10.9.0.{i}}}\n" for i in (1, 2, 3)
    )
    plan = load_text(tmp_path, spec).plan
    plain = pg_hba(plan)
    assert "10.9.0.254/32" not in json.dumps(plain)
    assert all(f"10.9.0.{i}/32" in json.dumps(plain) for i in (1, 2, 3))
    seated = pg_hba(plan, operator="10.9.0.254")
    assert [line for line in seated if line not in plain] == [
        "hostssl replication replicator 10.9.0.254/32 scram-sha-256",
        "hostssl all all 10.9.0.254/32 scram-sha-256",
    ]


def test_a_process_already_in_the_namespace_runs_there_without_nsenter() -> None:
    # The backup scheduler runs in its host's namespace as the backup user: nsenter (root
    # only) is not needed, and would fail.
    assert _already_in("/proc/self/ns/net")
    assert not _already_in("/nonexistent/netns")
