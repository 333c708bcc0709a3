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
from dataclasses import asdict, dataclass
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
    readmit,
)
from hastack.tools import haproxy_api
from hastack.tools.etcd_api import EtcdClient, EtcdUnavailable
from hastack.tools.http import client as http_client

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
FENCE_DEADLINE_S = 3.0
RELEASE_DEADLINE_S = 8.0


@dataclass(frozen=True)
class RestProbe:
    ok: bool
    """Patroni's REST API answered /liveness (any status: the process runs)."""
    role: str | None = None
    pg_state: str | None = None
    dcs_age_s: float | None = None
    """Seconds since that Patroni last reached etcd (from its `dcs_last_seen`)."""


def probe_liveness(node: FenceNode, timeout_s: float) -> bool:
    """/liveness never touches PostgreSQL, so it answers at once even while PostgreSQL is
    down (/patroni queries PostgreSQL and can take seconds then)."""
    try:
        url = f"http://{node.address}:{node.rest_port}/liveness"
        http_client().get(url, timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return True


def probe_member(node: FenceNode, timeout_s: float) -> RestProbe:
    """Role, PostgreSQL state and DCS contact as /patroni reports them (None when it does not
    answer in time)."""
    try:
        url = f"http://{node.address}:{node.rest_port}/patroni"
        body = http_client().get(url, timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError):
        return RestProbe(ok=False)
    role, state, seen = body.get("role"), body.get("state"), body.get("dcs_last_seen")
    return RestProbe(
        ok=True,
        role=None if role is None else str(role),
        pg_state=None if state is None else str(state),
        dcs_age_s=None if seen is None else max(0.0, time.time() - float(seen)),
    )


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


def _max_known(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


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
        self.last: tuple[Any, ...] | None = None
        self.pool = ThreadPoolExecutor(max_workers=3)
        # Survives a restart of the watcher: nodes it took out of HAProxy are let back in.
        self.routed_away: dict[str, list[str]] = self._load_routed_away()

    def observe(self) -> Observation:
        cfg = self.config
        t = time.monotonic()
        try:
            leader, lease = self.etcd.get_with_lease(cfg.leader_key)
            dynamic = self.etcd.get(cfg.config_key)
            lease_age = self.etcd.lease_age_s(lease) if lease else None
        except EtcdUnavailable:
            # Keep probing the last known leader; decide() will not act on it without etcd.
            rest, pg_ok = self.probe(cfg.node(self.state.leader or ""))
            return Observation(
                t=t,
                leader=None,
                etcd_ok=False,
                rest_ok=None if rest is None else rest.ok,
                pg_ok=pg_ok,
            )
        paused = bool(dynamic and json.loads(dynamic).get("pause"))
        held = hold_active(Path(cfg.hold_file))
        rest, pg_ok = self.probe(cfg.node(leader) if leader else None)
        return Observation(
            t=t,
            leader=leader,
            etcd_ok=True,
            paused=paused,
            held=held,
            rest_ok=None if rest is None else rest.ok,
            pg_ok=pg_ok,
            role=None if rest is None else rest.role,
            pg_state=None if rest is None else rest.pg_state,
            dcs_age_s=_max_known(None if rest is None else rest.dcs_age_s, lease_age),
        )

    def probe(self, node: FenceNode | None) -> tuple[RestProbe | None, bool | None]:
        """Patroni's REST answers and whether PostgreSQL answers, probed in parallel."""
        if node is None:
            return None, None
        timeout = self.config.probe_timeout_s
        alive = self.pool.submit(probe_liveness, node, timeout)
        member = self.pool.submit(probe_member, node, timeout)
        pg = self.pool.submit(probe_pg, node, timeout)
        info = member.result()
        return RestProbe(alive.result(), info.role, info.pg_state, info.dcs_age_s), pg.result()

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

    def route_away(self, node: FenceNode, everywhere: bool) -> None:
        """Take the node out of HAProxy's read-write pool (every pool when fenced) now,
        cutting its sessions, until `readmit_returning` sees it back as a replica."""
        cfg = self.config
        backends = cfg.haproxy_backends if everywhere else (cfg.haproxy_rw_backend,)
        for backend in backends:
            with contextlib.suppress(haproxy_api.HAProxyUnavailable):
                haproxy_api.set_maintenance(Path(cfg.haproxy_socket), backend, node.name)
        self.routed_away[node.name] = sorted(
            set(self.routed_away.get(node.name, [])) | set(backends)
        )
        self._save_routed_away()

    def readmit_returning(self, leader: str | None) -> None:
        """Put nodes taken out of HAProxy back once they run again as replicas."""
        if not self.routed_away or self.state.down_since is not None:
            return  # never slow down a step that may have to fence
        nodes = [n for n in (self.config.node(name) for name in self.routed_away) if n]
        probes = list(self.pool.map(lambda n: probe_member(n, self.config.probe_timeout_s), nodes))
        roles = {n.name: (p.role, p.pg_state) for n, p in zip(nodes, probes, strict=True)}
        for name in readmit(frozenset(self.routed_away), roles, leader):
            for backend in self.routed_away.pop(name):
                with contextlib.suppress(haproxy_api.HAProxyUnavailable):
                    haproxy_api.set_ready(Path(self.config.haproxy_socket), backend, name)
            self._save_routed_away()
            role, _state = roles[name]
            self.log(
                Decision("readmit", name, f"{name} runs again ({role}): back in HAProxy"),
                {},
                force=True,
            )

    def _load_routed_away(self) -> dict[str, list[str]]:
        try:
            data = json.loads(Path(self.config.routed_away_file).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): [str(b) for b in v] for k, v in data.items()}

    def _save_routed_away(self) -> None:
        Path(self.config.routed_away_file).write_text(json.dumps(self.routed_away))

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
        if obs.etcd_ok:
            self.readmit_returning(obs.leader)
        decision, self.state = decide(
            self.state,
            obs,
            self.config.detect_s,
            self.config.dcs_silence_s,
            self.config.release_running_stale_leader,
        )
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
            fenced = "confirmed" in extra
            self.route_away(node, everywhere=fenced)
            released, how = self.release(node)
            self.state = after_release(self.state, node.name, released)
            extra = {**extra, "released": released, "how": how}
            self.log(decision, extra, force=True)
            return decision
        if decision.action == "suspect" and self.state.down_since is not None:
            extra = {"silent_for_s": round(obs.t - self.state.down_since, 3)}
        self.log(decision, extra, key=(decision.action, decision.sentence, self.state.down_since))
        return decision

    def log(
        self,
        decision: Decision,
        extra: dict[str, Any],
        force: bool = False,
        key: tuple[Any, ...] | None = None,
    ) -> None:
        """One line per decision that differs from the previous one (`key` says what counts
        as different; a suspicion whose clock restarted is a new decision)."""
        key = key or (decision.action, decision.sentence)
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
