"""The fencing watcher process: observe -> decide -> act, one sentence per decision.

Run by supervisord as `<state>/fencing/hastack-fencer <state>/fencing/watcher.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from supervisor.xmlrpc import SupervisorTransport

from hastack.runtime.fencing import (
    Decision,
    FenceConfig,
    FenceNode,
    Observation,
    WatchState,
    after_fence,
    after_release,
    decide,
)
from hastack.tools.etcd_api import EtcdClient, EtcdUnavailable
from hastack.tools.http import client as http_client

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
FENCE_DEADLINE_S = 3.0
RELEASE_DEADLINE_S = 8.0


def probe_rest(node: FenceNode, timeout_s: float) -> bool:
    """Patroni's /liveness answers 200 while its HA loop runs."""
    try:
        url = f"http://{node.address}:{node.rest_port}/liveness"
        return http_client().get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def probe_pg(node: FenceNode, timeout_s: float) -> bool:
    """A real protocol round trip (SSLRequest -> 'S'/'N'): the postmaster must fork a backend
    to answer, so a frozen or hung PostgreSQL fails it, where a bare TCP connect would not
    (the kernel completes the handshake for a stopped process)."""
    try:
        with socket.create_connection((node.address, node.pg_port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(SSL_REQUEST)
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


def hold_active(path: Path, now: float | None = None) -> bool:
    try:
        until = float(json.loads(path.read_text())["until"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return until > (now if now is not None else time.time())


@contextlib.contextmanager
def hold(path: Path, seconds: float, reason: str) -> Iterator[None]:
    """Keep the watcher from acting while hastack itself stops or moves the leader."""
    if not path.parent.exists():
        yield
        return
    path.write_text(json.dumps({"until": time.time() + seconds, "reason": reason}))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def node_pids(node: FenceNode) -> list[int]:
    pids = []
    for proc in psutil.process_iter(["username"]):
        if proc.info["username"] == node.user:
            pids.append(proc.pid)
    return pids


class Watcher:
    def __init__(self, config: FenceConfig) -> None:
        self.config = config
        self.etcd = EtcdClient(config.etcd_urls, timeout_s=config.probe_timeout_s)
        self.state = WatchState()
        self.last: tuple[str, str | None] | None = None
        self.pool = ThreadPoolExecutor(max_workers=2)

    def observe(self) -> Observation:
        cfg = self.config
        t = time.monotonic()
        try:
            leader = self.etcd.get(cfg.leader_key)
            dynamic = self.etcd.get(cfg.config_key)
        except EtcdUnavailable:
            # Keep probing the last known leader; decide() will not act on it without etcd.
            rest_ok, pg_ok = self.probe(cfg.node(self.state.leader or ""))
            return Observation(t=t, leader=None, etcd_ok=False, rest_ok=rest_ok, pg_ok=pg_ok)
        paused = bool(dynamic and json.loads(dynamic).get("pause"))
        held = hold_active(Path(cfg.hold_file))
        rest_ok, pg_ok = self.probe(cfg.node(leader) if leader else None)
        return Observation(
            t=t,
            leader=leader,
            etcd_ok=True,
            paused=paused,
            held=held,
            rest_ok=rest_ok,
            pg_ok=pg_ok,
        )

    def probe(self, node: FenceNode | None) -> tuple[bool | None, bool | None]:
        """(REST API ok, PostgreSQL ok) for `node`, probed in parallel; None when no node."""
        if node is None:
            return None, None
        timeout = self.config.probe_timeout_s
        rest = self.pool.submit(probe_rest, node, timeout)
        pg = self.pool.submit(probe_pg, node, timeout)
        return rest.result(), pg.result()

    def fence(self, node: FenceNode) -> tuple[bool, int]:
        """Stop the node's supervisor group (no autorestart), then SIGKILL every process of
        its user until none is left. (confirmed, processes killed)."""
        transport = SupervisorTransport(None, None, f"unix://{self.config.supervisor_socket}")
        with contextlib.suppress(OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
            proxy.supervisor.stopProcessGroup(node.name, False)
        killed: set[int] = set()
        deadline = time.monotonic() + FENCE_DEADLINE_S
        while time.monotonic() < deadline:
            pids = node_pids(node)
            if not pids:
                return True, len(killed)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.02)
        return not node_pids(node), len(killed)

    def release(self, node: FenceNode) -> tuple[bool, str]:
        """Delete the leader key only if it still names `node`, through the surviving etcd
        members, retrying while etcd elects a leader."""
        client = EtcdClient(self.config.etcd_urls_without(node.name), timeout_s=0.5)
        deadline = time.monotonic() + RELEASE_DEADLINE_S
        while time.monotonic() < deadline:
            try:
                deleted = client.delete_if_equals(self.config.leader_key, node.name)
            except EtcdUnavailable:
                time.sleep(0.1)
                continue
            return True, "deleted" if deleted else "already changed"
        return False, "etcd did not answer"

    def step(self) -> Decision:
        obs = self.observe()
        decision, self.state = decide(self.state, obs, self.config.detect_s)
        extra: dict[str, Any] = {}
        node = self.config.node(decision.node) if decision.node else None
        if decision.action == "fence" and node is not None:
            confirmed, killed = self.fence(node)
            extra = {"confirmed": confirmed, "killed": killed}
            self.state = after_fence(self.state, node.name, confirmed)
            self.log(decision, extra, force=True)
            if not confirmed:
                self.log(
                    Decision(
                        "none",
                        node.name,
                        f"fence of {node.name} not confirmed: leaving it to the TTL",
                    ),
                    {},
                    force=True,
                )
                return decision
            decision = Decision(
                "release",
                node.name,
                f"{node.name} fenced ({killed} processes killed): releasing its leader key",
            )
        if decision.action == "release" and node is not None:
            released, how = self.release(node)
            self.state = after_release(self.state, node.name, released)
            extra = {**extra, "released": released, "how": how}
            self.log(decision, extra, force=True)
            return decision
        self.log(decision, extra)
        return decision

    def log(self, decision: Decision, extra: dict[str, Any], force: bool = False) -> None:
        """One line per decision that differs from the previous one."""
        key = (decision.action, decision.sentence)
        if not force and key == self.last:
            return
        self.last = key
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "t_mono": round(time.monotonic(), 3),
            **asdict(decision),
            **extra,
        }
        with open(self.config.decision_log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        print(f"{record['time']} {decision.sentence}", flush=True)

    def run(self) -> None:
        print(f"fencing watcher for stack {self.config.stack!r} started", flush=True)
        while True:
            started = time.monotonic()
            try:
                self.step()
            except Exception as exc:
                print(f"error in watcher step: {type(exc).__name__}: {exc}", flush=True)
            elapsed = time.monotonic() - started
            time.sleep(max(0.0, self.config.poll_interval_s - elapsed))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: hastack-fencer WATCHER_JSON", file=sys.stderr)
        return 2
    Watcher(FenceConfig.from_json(Path(argv[1]).read_text())).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
