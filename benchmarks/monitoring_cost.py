#!/usr/bin/env python3
"""What monitoring costs the stack: idle memory and CPU, and throughput with scraping on vs off.

On a running stack with monitoring (the demo app): the idle footprint of the monitoring
user's processes against the whole stack's; then, in the same run, what users do, measured
with Prometheus running (every exporter scraped every 5 s) and stopped (nobody asks the
exporters anything): the database-backed work-order list through HAProxy (wrk, every
instance, 32 users' tokens, as `hastack bench http`'s "demo list" row) and pgbench
select-only and TPC-B through PgBouncer (as `hastack bench pg`'s rows). Pairs run in
on-off, off-on order (ABBA), so drift over the run falls on both sides. The watcher is
held off Prometheus while it is stopped. Prints every measurement and the median cost.

    .venv/bin/python benchmarks/monitoring_cost.py -c hastack.yaml --pairs 4 --duration 15 [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hastack.ops.app_tokens import load_tokens
from hastack.ops.bench import (
    bench_paths,
    drop_tables,
    idle_footprint,
    initialise_as_owner,
    refuse_existing_tables,
)
from hastack.ops.bench_http import BENCH_USERS, LIST_PATH
from hastack.ops.trust import refuse_untrusted_spec
from hastack.runtime.stack import Stack
from hastack.spec import derive_plan, load_spec
from hastack.spec.names import LOAD_TEST_HEADER

PROMETHEUS = "monitor:prometheus"


def footprint(stack: Stack, window_s: float = 10.0) -> dict[str, float]:
    """The whole stack's PSS and CPU (`hastack bench idle`), and those of the monitoring
    user's processes (Prometheus, Alertmanager, the exporters, the receiver) over the same
    kind of window."""
    user = stack.plan.service_users["monitor"]
    mine = [p for p in stack.processes() if _owner(p) == user]
    before = {p.pid: _cpu(p) for p in mine}
    time.sleep(window_s)
    pss = sum(p.memory_full_info().pss for p in mine if p.is_running()) / 1048576
    cpu = sum(_cpu(p) - before[p.pid] for p in mine if p.is_running()) / window_s * 100
    report = idle_footprint(stack, window_s=window_s)
    return {
        "stack_pss_mib": round(sum(c.pss_mib for c in report.components), 1),
        "stack_cpu_percent": round(sum(c.cpu_percent for c in report.components), 2),
        "monitoring_processes": len(mine),
        "monitoring_pss_mib": round(pss, 1),
        "monitoring_cpu_percent": round(cpu, 2),
    }


def _owner(proc: psutil.Process) -> str | None:
    try:
        return proc.username()
    except psutil.Error:
        return None


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def one_round(stack: Stack, ctx: Context) -> dict[str, float]:
    plan = stack.plan
    http = stack.wrk().run(
        f"{plan.app_url}{LIST_PATH}",
        duration_s=ctx.duration_s,
        connections=32,
        headers={LOAD_TEST_HEADER: stack.secrets.load_test_token, **ctx.auth},
        rotate=ctx.rotate,
    )
    if http.socket_errors or http.non_2xx:
        raise SystemExit(
            f"HTTP run invalid: {http.socket_errors} socket errors, {http.non_2xx} non-2xx"
        )
    figures = {"http_db_list_req_per_s": round(http.requests_per_s, 1)}
    endpoint = bench_paths(stack, ctx.leader)["pgbouncer"]
    for workload, select_only in (("select-only", True), ("tpc-b", False)):
        result = stack.pgbench().run_workload(
            endpoint, select_only=select_only, clients=16, threads=2, duration_s=ctx.duration_s
        )
        figures[f"pg_{workload}_tps"] = round(result.tps, 1)
    return figures


@dataclass(frozen=True)
class Context:
    leader: str
    duration_s: int
    auth: dict[str, str]
    rotate: tuple[str, list[str]]


def measure(stack: Stack, ctx: Context, state: str) -> dict[str, float]:
    if state == "on":
        return one_round(stack, ctx)
    with stack.hold(3600, "benchmark: scraping off", [PROMETHEUS]):
        stack.supervisor.stop(PROMETHEUS)
        try:
            return one_round(stack, ctx)
        finally:
            stack.supervisor.start(PROMETHEUS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("hastack.yaml"))
    parser.add_argument("--pairs", type=int, default=4, help="on/off pairs (ABBA order)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    refuse_untrusted_spec(args.config)  # root acts on it, like the CLI
    stack = Stack(derive_plan(load_spec(args.config).spec))
    if not stack.plan.monitoring_enabled:
        print("monitoring is off in this spec", file=sys.stderr)
        return 2
    idle = footprint(stack)
    if not args.json:
        print(
            f"idle: monitoring {idle['monitoring_pss_mib']} MiB PSS, "
            f"{idle['monitoring_cpu_percent']} % of a core; whole stack "
            f"{idle['stack_pss_mib']} MiB, {idle['stack_cpu_percent']} %",
            flush=True,
        )
    rounds: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    leader = stack.leader()
    if leader is None or not stack.plan.app_is_demo:
        print("needs a leader and the demo app", file=sys.stderr)
        return 2
    refuse_existing_tables(stack, leader)
    initialise_as_owner(stack, leader, 10)
    try:
        with load_tokens(stack, "bench", BENCH_USERS, "bench-site") as tokens:
            ctx = Context(
                leader=leader,
                duration_s=args.duration,
                auth={stack.plan.spec.app.tenant_header: str(tokens[0].sites[0])},
                rotate=("Authorization", [f"Bearer {t.token}" for t in tokens]),
            )
            for pair in range(args.pairs):
                for state in ("on", "off") if pair % 2 == 0 else ("off", "on"):
                    figures = measure(stack, ctx, state)
                    rounds[state].append(figures)
                    if not args.json:
                        print(f"scraping {state:3}: {figures}", flush=True)
    finally:
        drop_tables(stack, leader)
    cost: dict[str, Any] = {}
    for key in rounds["on"][0]:
        on = statistics.median(r[key] for r in rounds["on"])
        off = statistics.median(r[key] for r in rounds["off"])
        cost[key] = {"on": on, "off": off, "cost_percent": round((off - on) / off * 100, 1)}
    result = {"idle": idle, "rounds": rounds, "cost": cost, "duration_s": args.duration}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, c in cost.items():
            print(
                f"{key:28} on {c['on']:9.1f}  off {c['off']:9.1f}  cost {c['cost_percent']:5.1f} %"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
