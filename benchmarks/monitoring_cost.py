#!/usr/bin/env python3
"""What monitoring costs the stack: idle memory and CPU, and throughput with scraping on vs off.

On a running stack with monitoring: the idle footprint of the monitoring programs against
the whole stack's; then rounds of the database-backed HTTP request (`hastack bench http`'s
work-order list through HAProxy, every instance) and pgbench TPC-B and select-only through
PgBouncer (`hastack bench pg`), alternating Prometheus running (every exporter scraped every
5 s) and stopped (the exporters idle: nobody asks them), on, off, on, off..., so drift over the
run falls on both sides. The watcher is held off Prometheus while it is stopped. Prints each
round and the median cost in percent.

    .venv/bin/python benchmarks/monitoring_cost.py -c hastack.yaml --rounds 2 --duration 8 [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from hastack.ops.bench import bench_pg, idle_footprint
from hastack.ops.bench_http import bench_http
from hastack.ops.trust import refuse_untrusted_spec
from hastack.runtime.stack import Stack
from hastack.spec import derive_plan, load_spec

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


def one_round(stack: Stack, duration_s: int) -> dict[str, float]:
    http = bench_http(stack, duration_s=duration_s).summary()
    pg = bench_pg(stack, duration_s=duration_s, clients=16)
    figures = {"http_db_list_req_per_s": float(http["demo_list_req_per_s"] or 0.0)}
    for r in pg.results:
        if r.path == "pgbouncer":
            figures[f"pg_{r.workload}_tps"] = round(r.tps, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("hastack.yaml"))
    parser.add_argument("--rounds", type=int, default=2, help="pairs of on/off rounds")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
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
    for _ in range(args.rounds):
        for state in ("on", "off"):
            if state == "on":
                figures = one_round(stack, args.duration)
            else:
                with stack.hold(3600, "benchmark: scraping off", [PROMETHEUS]):
                    stack.supervisor.stop(PROMETHEUS)
                    try:
                        figures = one_round(stack, args.duration)
                    finally:
                        stack.supervisor.start(PROMETHEUS)
            rounds[state].append(figures)
            if not args.json:
                print(f"scraping {state:3}: {figures}", flush=True)
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
