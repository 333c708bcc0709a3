"""Watches the cluster during a drill: the leader key (linearizable etcd reads) and every
node's own answer to `pg_is_in_recovery()`, each node probed by its own thread with fresh
connections (a persistent connection to a node that stopped answering would keep reporting
its last state)."""

from __future__ import annotations

import threading
import time

import psycopg

from hastack.drills.events import History, RoleSample
from hastack.errors import Unavailable
from hastack.runtime.stack import Stack

PROBE_INTERVAL_S = 0.2


class Monitor:
    def __init__(self, stack: Stack, history: History) -> None:
        self.stack = stack
        self.node_dsns = {n.name: stack.node_url(n.name) for n in stack.plan.postgres_nodes}
        self.history = history
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=self._watch_leader, name="drill-leader", daemon=True)
        ] + [
            threading.Thread(target=self._watch_node, args=(n,), name=f"drill-{n}", daemon=True)
            for n in self.node_dsns
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(5)

    def _watch_leader(self) -> None:
        client = self.stack.etcd(timeout_s=0.5)
        key = self.stack.plan.leader_key()
        last: str | None = "?"
        while not self.stop_event.is_set():
            try:
                value: str | None = client.get(key)
                text = f"leader key: {value}" if value else "leader key: none"
            except Unavailable:
                value, text = "unreadable", "leader key: etcd unreadable"
            if value != last:
                self.history.mark("leader", text, node=value if value != "unreadable" else None)
                last = value
            self.stop_event.wait(PROBE_INTERVAL_S)

    def _watch_node(self, node: str) -> None:
        last = "?"
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            role = probe_role(self.node_dsns[node])
            t1 = time.monotonic()
            self.history.sample(RoleSample(node, t0, t1, role))
            if role != last:
                self.history.mark("role", f"{node}: {role}", node=node, t=t1)
                last = role
            self.stop_event.wait(max(0.0, PROBE_INTERVAL_S - (t1 - t0)))


def probe_role(dsn: str) -> str:
    try:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return "down"
    return "replica" if row and row[0] else "primary"
