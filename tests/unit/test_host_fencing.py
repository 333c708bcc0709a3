"""Fencing on separate hosts, the pure parts: how a probe tells a host that takes no
connection from a process that is only silent, which standby the watcher hands the leader
key to, and who the nodes admit when the hosts are simulated here."""

from __future__ import annotations

import errno
import json
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from hastack.render.fencer import render_watcher_config
from hastack.render.patroni import pg_hba
from hastack.runtime.fencing import WatcherConfig
from hastack.runtime.healing import node_fenced
from hastack.runtime.probes import _http_failure
from hastack.runtime.watcher import UNFENCE_RETRY_S, Watcher, _sync_standby
from hastack.tools.base import ToolResult, _already_in
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


HOSTS_SPEC = """\
name: demo
target: systemd
fencing:
  command: "true"
  unfence_command: "true"
hosts:
  - {name: db1, address: 10.0.0.11}
  - {name: db2, address: 10.0.0.12}
  - {name: db3, address: 10.0.0.13, runs: [pg3, backup]}
"""


def _watcher(tmp_path: Path) -> Watcher:
    """A watcher of a stack on three hosts, its files under tmp_path; nothing is contacted
    until a poll runs (none does here)."""
    plan = load_text(tmp_path, HOSTS_SPEC).plan
    config = WatcherConfig.from_json(render_watcher_config(plan))
    config = replace(
        config,
        decision_log=str(tmp_path / "decisions.jsonl"),
        state_file=str(tmp_path / "state.json"),
        heartbeat_file=str(tmp_path / "heartbeat.json"),
        holds_dir=str(tmp_path / "holds"),
        metrics_file="",
        decisions_mirror="",
    )
    return Watcher(config)


def _finished(ok: bool) -> Future[ToolResult]:
    future: Future[ToolResult] = Future()
    future.set_result(ToolResult(("/bin/sh",), 0 if ok else 1, "", "", 0.1))
    return future


def test_a_fenced_host_is_probed_again_only_once_its_unfence_succeeded(tmp_path: Path) -> None:
    watcher = _watcher(tmp_path)
    node = watcher.config.node("pg2")
    assert node is not None and watcher.config.fenced_by_command(node)
    watcher.heal = node_fenced(watcher.heal, "pg2", 0.0)
    assert watcher._host_still_off(node)  # a probe could only time out
    watcher.unfencing["pg2"] = (_finished(False), "bringing db2 back")
    watcher._collect_unfenced(1.0)
    assert watcher._host_still_off(node)  # the command failed: still off, tried again later
    watcher.unfencing["pg2"] = (_finished(True), "bringing db2 back")
    watcher._collect_unfenced(2.0)
    assert not watcher._host_still_off(node)
    # A later retry that fails (its host is on already: `virsh start` exits 1) neither
    # stops the probes nor hurries the next retry.
    watcher.unfencing["pg2"] = (_finished(False), "bringing db2 back")
    watcher._collect_unfenced(400.0)
    assert not watcher._host_still_off(node)
    assert watcher.unfenced["pg2"].retry_at == 400.0 + UNFENCE_RETRY_S


def test_an_unfence_result_for_a_node_back_already_is_dropped(tmp_path: Path) -> None:
    watcher = _watcher(tmp_path)
    watcher.unfencing["pg2"] = (_finished(True), "bringing db2 back")
    watcher._collect_unfenced(1.0)  # pg2 is not fenced (any more)
    assert "pg2" not in watcher.unfenced
    assert "bringing db2 back" in Path(watcher.config.decision_log).read_text()


def test_a_fence_waits_for_a_pending_unfence_of_its_host(tmp_path: Path) -> None:
    """A late power-on must never undo a fence: the fence command runs after it ended."""
    watcher = _watcher(tmp_path)
    node = watcher.config.node("pg2")
    assert node is not None
    ended: list[float] = []

    def slow_unfence() -> ToolResult:
        time.sleep(0.5)
        ended.append(time.monotonic())
        return ToolResult(("/bin/sh",), 0, "", "", 0.5)

    pending = watcher.host_pool.submit(slow_unfence)
    watcher.unfencing["pg2"] = (pending, "bringing db2 back")
    confirmed, how = watcher.fence(node)
    assert confirmed, how
    assert pending.done() and ended and "pg2" not in watcher.unfencing
