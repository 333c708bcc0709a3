#!/usr/bin/env python3
"""Where a planned switchover's write gap goes.

Runs `switchover` on a running stack while samplers record, every 20 ms, from the moment the
switchover is requested:
  - the old leader: when it stops accepting a new connection (its shutdown began),
  - the candidate: when `pg_is_in_recovery()` turns false (promoted),
  - HAProxy's read-write backend: when it marks the candidate UP,
  - the switchover op: when a write through HAProxy reaches the candidate, and when
    PgBouncer is resumed,
and prints each milestone in seconds after the request (median over the runs).

    .venv/bin/python benchmarks/switchover_breakdown.py -c hastack.yaml --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg

from hastack.ops.cluster import cluster_roles, switchover
from hastack.ops.trust import refuse_untrusted_spec
from hastack.runtime.stack import Stack
from hastack.spec import derive_plan, load_spec
from hastack.spec.names import RW_BACKEND

INTERVAL_S = 0.02


class Sampler(threading.Thread):
    def __init__(self, stack: Stack, old: str, new: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.old, self.new = stack, old, new
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}
        self.stop = threading.Event()

    def mark(self, name: str) -> None:
        # Node names differ from run to run; the milestones do not.
        for node, role in ((self.old, "old"), (self.new, "new")):
            name = name.replace(node, role)
        self.marks.setdefault(name, round(time.monotonic() - self.t0, 3))

    def run(self) -> None:
        old_url, new_url = self.stack.node_url(self.old), self.stack.node_url(self.new)
        haproxy = self.stack.haproxy()
        while not self.stop.is_set():
            if "old refuses new connections" not in self.marks and not _answers(old_url):
                self.mark("old refuses new connections")
            if "new promoted" not in self.marks and _primary(new_url):
                self.mark("new promoted")
            servers = haproxy.servers_of(RW_BACKEND)
            if "haproxy: old DOWN" not in self.marks and not servers[self.old].up:
                self.mark("haproxy: old DOWN")
            if "haproxy: new UP" not in self.marks and servers[self.new].up:
                self.mark("haproxy: new UP")
            time.sleep(INTERVAL_S)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _primary(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return row is not None and not row[0]
    except psycopg.Error:
        return False


class StepMarks:
    """The op's own steps (PgBouncer paused, requested, writable, resumed) on the sampler's
    clock."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def step(self, message: str) -> None:
        self.sampler.mark("op: " + message.split(":")[0])

    def done(self, message: str) -> None:
        self.step(message)


def one_run(stack: Stack) -> dict[str, float]:
    leader, sync, _ = cluster_roles(stack)
    assert leader and sync, "the stack needs a leader and a synchronous standby"
    sampler = Sampler(stack, leader, sync)
    sampler.start()
    switchover(stack, sync, progress=StepMarks(sampler))
    sampler.stop.set()
    sampler.join(5)
    return dict(sampler.marks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", default="hastack.yaml")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    spec = Path(args.config)
    refuse_untrusted_spec(spec)  # root acts on it, like the CLI
    stack = Stack(derive_plan(load_spec(spec).spec))
    runs = []
    for n in range(args.runs):
        runs.append(one_run(stack))
        print(f"run {n + 1}: {runs[-1]}", file=sys.stderr, flush=True)
        time.sleep(10)  # the old leader rejoins as a replica before the next run
    names = sorted(
        {k for r in runs for k in r},
        key=lambda k: statistics.median([r[k] for r in runs if k in r]),
    )
    summary = {k: statistics.median([r[k] for r in runs if k in r]) for k in names}
    if args.json:
        print(json.dumps({"runs": runs, "median_s": summary}, indent=2))
    else:
        for k, v in summary.items():
            print(f"{v:7.3f} s  {k}")


if __name__ == "__main__":
    main()
