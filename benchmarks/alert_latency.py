#!/usr/bin/env python3
"""From a component stopped to its alert at hastack's receiver, and back.

On a running stack with monitoring: for each fault (the leader's Patroni stopped, which
stops its PostgreSQL and hands the leader key over; Redis; an app instance; an etcd member),
hold the watcher off that one program
(it would start it again within seconds, before any rule's `for:` passed), stop it, wait
until Alertmanager's notification of the expected alert reaches the receiver
(`<state>/services/monitor/alerts.jsonl`), start it again and wait for the "resolved" one.
Prints seconds from the stop to "firing" and from the start to "resolved" (median over the
runs). The watcher's hold ends with each fault.

    .venv/bin/python benchmarks/alert_latency.py -c hastack.yaml --runs 3 [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from hastack.ops.lifecycle import wait_healthy
from hastack.ops.trust import refuse_untrusted_spec
from hastack.runtime.stack import Stack
from hastack.spec import derive_plan, load_spec

DEADLINE_S = 180.0

FAULTS = (
    # (what, program to stop, alert expected, its label that names the component);
    # {leader}: the PostgreSQL leader when the fault starts.
    (
        "the leader's Patroni stopped",
        "{leader}:{leader}-patroni",
        "PostgresqlDown",
        "{leader}",
    ),
    ("Redis stopped", "redis:redis", "RedisDown", None),
    ("an app instance stopped", "app2:app2", "AppInstanceDown", "app2"),
    ("an etcd member stopped", "pg3:pg3-etcd", "EtcdMemberDown", "etcd3"),
)


def _notified(log: Path, since_line: int, alert: str, state: str, label: str | None) -> bool:
    try:
        lines = log.read_text().splitlines()[since_line:]
    except OSError:
        return False
    for line in lines:
        record = json.loads(line)
        for a in record.get("alerts", []):
            labels = a.get("labels", {})
            if labels.get("alertname") != alert or a.get("status") != state:
                continue
            if label is None or label in labels.values():
                return True
    return False


def _lines(log: Path) -> int:
    try:
        return len(log.read_text().splitlines())
    except OSError:
        return 0


def _wait(log: Path, since: int, alert: str, state: str, label: str | None) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < DEADLINE_S:
        if _notified(log, since, alert, state, label):
            return round(time.monotonic() - t0, 1)
        time.sleep(0.25)
    raise SystemExit(f"{alert} {state} did not reach the receiver within {DEADLINE_S:.0f} s")


def one_fault(stack: Stack, program: str, alert: str, label: str | None) -> tuple[float, float]:
    log = stack.plan.paths.alerts_log
    sup = stack.supervisor
    with stack.hold(DEADLINE_S * 2 + 60, f"benchmark: {alert}", [program]):
        since = _lines(log)
        sup.stop(program)
        firing = _wait(log, since, alert, "firing", label)
        since = _lines(log)
        sup.start(program)
        resolved = _wait(log, since, alert, "resolved", label)
    return firing, resolved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("hastack.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    refuse_untrusted_spec(args.config)  # root acts on it, like the CLI
    stack = Stack(derive_plan(load_spec(args.config).spec))
    if not stack.plan.monitoring_enabled:
        print("monitoring is off in this spec", file=sys.stderr)
        return 2
    results = []
    for what, program, alert, label in FAULTS:
        runs = []
        for _ in range(args.runs):
            leader = stack.leader() or "pg1"
            runs.append(
                one_fault(
                    stack,
                    program.format(leader=leader),
                    alert,
                    None if label is None else label.format(leader=leader),
                )
            )
            wait_healthy(stack, 180)  # the old leader rejoins before the next run
        results.append(
            {
                "fault": what,
                "alert": alert,
                "firing_s": [f for f, _ in runs],
                "resolved_s": [r for _, r in runs],
                "firing_median_s": statistics.median(f for f, _ in runs),
                "resolved_median_s": statistics.median(r for _, r in runs),
            }
        )
        if not args.json:
            last = results[-1]
            print(
                f"{what:28} {alert:18} firing after {last['firing_median_s']:5.1f} s "
                f"(runs {last['firing_s']}), resolved {last['resolved_median_s']:5.1f} s "
                f"after the start (runs {last['resolved_s']})",
                flush=True,
            )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
