"""Running drills by name, repeatedly, storing every report; and cleaning up after a crash."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass

import psutil

from hastack.drills.engine import DrillOptions, run_drill
from hastack.drills.html import render_html
from hastack.drills.report import DrillReport, save
from hastack.drills.scenarios import Scenario, scenario
from hastack.runtime import holds
from hastack.runtime.locks import exclusive
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack


def run_scenario(
    stack: Stack,
    name: str,
    repeat: int = 1,
    options: DrillOptions | None = None,
    progress: Progress | None = None,
) -> list[DrillReport]:
    """Run `name` `repeat` times; each report is saved (JSON + HTML) under the state dir,
    failed and errored runs included."""
    progress = progress or NullProgress()
    chosen = scenario(name)
    reports = []
    # Two drills on one stack would inject into and check each other's runs.
    with exclusive(stack.plan.paths.drill_lock, "hastack drill", 0, progress, stack.clock):
        for i in range(repeat):
            reports.append(_run_once(stack, chosen, name, i, repeat, options, progress))
    return reports


def _run_once(
    stack: Stack,
    chosen: Scenario,
    name: str,
    i: int,
    repeat: int,
    options: DrillOptions | None,
    progress: Progress,
) -> DrillReport:
    if repeat > 1:
        progress.step(f"{name}: run {i + 1} of {repeat}")
    report = run_drill(stack, chosen, options, progress)
    save(report, stack.plan.paths.drills_dir, render_html(report.to_dict()))
    verdict = "passed" if report.passed else "FAILED"
    gap = "-" if report.write_gap_s is None else f"{report.write_gap_s:.2f} s"
    progress.done(
        f"{name}: {verdict}, write gap {gap}, lost acked writes "
        f"{report.rpo_lost_acked_writes}" + (f" ({report.error})" if report.error else "")
    )
    return report


@dataclass
class CleanupResult:
    removed_network_rules: bool
    thawed_processes: int
    released_holds: int


def cleanup(stack: Stack) -> CleanupResult:
    """Undo what an interrupted drill may have left: network rules, frozen processes (a
    SIGSTOPped node or etcd), watcher holds."""
    removed = stack.netcut().remove()
    users = set(stack.plan.all_users)
    thawed = 0
    for proc in psutil.process_iter(["username", "status"]):
        if proc.info["username"] in users and proc.info["status"] == psutil.STATUS_STOPPED:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            thawed += 1
    released = holds.release_all(stack.plan.paths.holds_dir)
    return CleanupResult(removed, thawed, released)
