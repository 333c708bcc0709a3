"""Running drills by name, repeatedly, storing every report; and cleaning up after a crash."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import psutil

from hastack.drills.html import render_html
from hastack.drills.http_drills import HTTP_SCENARIOS, HttpScenario, run_http_drill
from hastack.drills.report import DrillReport, save
from hastack.drills.runner import DrillError, DrillOptions, run_drill
from hastack.drills.scenarios import SCENARIOS, Scenario
from hastack.runtime.progress import NullProgress, Progress
from hastack.spec.plan import StackPlan
from hastack.tools import iptables


def scenario(name: str) -> Scenario | HttpScenario:
    if name in SCENARIOS:
        return SCENARIOS[name]
    if name in HTTP_SCENARIOS:
        return HTTP_SCENARIOS[name]
    raise DrillError(f"unknown drill {name!r}; `hastack drill list` shows them all")


def run_scenario(
    plan: StackPlan,
    name: str,
    repeat: int = 1,
    options: DrillOptions | None = None,
    progress: Progress | None = None,
) -> list[DrillReport]:
    """Run `name` `repeat` times; each report is saved (JSON + HTML) under the state dir."""
    progress = progress or NullProgress()
    chosen = scenario(name)
    reports = []
    for i in range(repeat):
        if repeat > 1:
            progress.step(f"{name}: run {i + 1} of {repeat}")
        report = (
            run_http_drill(plan, chosen, progress)
            if isinstance(chosen, HttpScenario)
            else run_drill(plan, chosen, options, progress)
        )
        save(report, plan.paths.drills_dir, render_html(report.to_dict()))
        verdict = "passed" if report.passed else "FAILED"
        progress.done(
            f"{name}: {verdict}, write gap {report.write_gap_s:.2f} s, "
            f"lost acked writes {report.rpo_lost_acked_writes}"
        )
        reports.append(report)
    return reports


@dataclass
class CleanupResult:
    removed_network_rules: bool
    thawed_processes: int
    released_hold: bool


def cleanup(plan: StackPlan) -> CleanupResult:
    """Undo what an interrupted drill may have left: network rules, frozen processes (a
    SIGSTOPped node or etcd), the watcher hold."""
    removed = iptables.remove_chain(plan.iptables_chain)
    users = set(plan.all_users)
    thawed = 0
    for proc in psutil.process_iter(["username", "status"]):
        if proc.info["username"] in users and proc.info["status"] == psutil.STATUS_STOPPED:
            os.kill(proc.pid, signal.SIGCONT)
            thawed += 1
    released = plan.paths.fencer_hold.exists()
    plan.paths.fencer_hold.unlink(missing_ok=True)
    return CleanupResult(removed, thawed, released)
