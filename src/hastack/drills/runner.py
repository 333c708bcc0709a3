"""One drill: precheck -> workload -> inject at T0 -> recovery -> heal -> healthy -> check.

Every number in the report is computed from recorded timestamps; nothing is inferred from
how long we slept.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hastack.drills import data as drill_data
from hastack.drills.checker import CheckInput, Verdict, check
from hastack.drills.events import History
from hastack.drills.faults import DrillContext
from hastack.drills.monitor import Monitor
from hastack.drills.report import DrillReport
from hastack.drills.scenarios import Scenario
from hastack.drills.timeline import build_report
from hastack.drills.workload import Targets, Workload
from hastack.ops.env import load_secrets_or_explain
from hastack.ops.lifecycle import wait_healthy
from hastack.render.connection import connection_settings
from hastack.render.secrets import Secrets
from hastack.runtime.dcs import converge_dcs
from hastack.runtime.fencer import hold
from hastack.runtime.health import data_tier
from hastack.runtime.lifecycle import current_leader
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.snapshot import supervisor_for, take_snapshot
from hastack.spec import roles
from hastack.spec.plan import StackPlan
from hastack.tools import iptables
from hastack.tools.patroni_api import PatroniClient


class DrillError(Exception):
    """The drill could not run (not: the drill ran and the stack failed it)."""


@dataclass(frozen=True)
class DrillOptions:
    fencing: bool = True
    """False: hold the fencing watcher for the whole drill (measures the TTL-bound path)."""
    warmup_s: float = 3.0
    recovery_deadline_s: float = 90.0
    healthy_deadline_s: float = 180.0
    steady_s: float = 2.0
    """Writes must flow this long, gaps under `max_gap_s`, to count as recovered."""
    max_gap_s: float = 0.5


def _now() -> float:
    return time.monotonic()


def _wait(
    predicate: Callable[[], bool], deadline_s: float, what: str, poll_s: float = 0.1
) -> float:
    """Poll until true; return when it became true (monotonic). Raises DrillError at the
    deadline."""
    end = _now() + deadline_s
    while _now() < end:
        if predicate():
            return _now()
        time.sleep(poll_s)
    raise DrillError(f"{what} not reached within {deadline_s:.0f} s")


def steady_writes(
    history: History, since: float, steady_s: float, max_gap_s: float, prefix: str = "url"
) -> bool:
    """Acks of the writers named `prefix`* (DATABASE_URL's by default) cover the last
    `steady_s` seconds (after `since`) with no gap over `max_gap_s`."""
    now = _now()
    if now - since < steady_s:
        return False
    times = sorted(
        a.t_end for a in history.acks if a.writer.startswith(prefix) and a.t_end >= now - steady_s
    )
    if not times or now - times[-1] > max_gap_s or times[0] - (now - steady_s) > max_gap_s:
        return False
    return all(b - a <= max_gap_s for a, b in itertools.pairwise(times))


def _targets(plan: StackPlan, secrets: Secrets, primary: str, pinned: bool) -> Targets:
    env = connection_settings(plan, secrets)
    node = plan.node(primary)
    pg = plan.spec.postgres
    direct_primary = (
        f"postgresql://{roles.APP}:{secrets.app_password}@{node.address}:{pg.port}/{pg.database}"
    )
    return Targets(
        url=env["DATABASE_URL"],
        direct=env["DATABASE_URL_DIRECT"],
        ro=env["DATABASE_URL_RO"],
        pinned=direct_primary if pinned else None,
        node_by_address={n.address: n.name for n in plan.postgres_nodes},
    )


def _node_dsns(plan: StackPlan, secrets: Secrets) -> dict[str, str]:
    pg = plan.spec.postgres
    return {
        n.name: f"postgresql://{roles.APP}:{secrets.app_password}@{n.address}:{pg.port}/"
        f"{pg.database}"
        for n in plan.postgres_nodes
    }


@contextlib.contextmanager
def _failsafe(
    plan: StackPlan, secrets: Secrets, leader: str, wanted: bool | None
) -> Iterator[None]:
    """Force Patroni's failsafe_mode for one drill and restore the spec's value after."""
    if wanted is None or wanted == plan.spec.postgres.failsafe_mode:
        yield
        return
    client = PatroniClient(
        plan.node(leader).address,
        plan.spec.patroni.rest_port,
        auth=(roles.PATRONI_REST, secrets.patroni_rest_password),
    )
    client.patch_config({"failsafe_mode": wanted})
    # Patroni reads the dynamic configuration once per HA loop; give every member two.
    time.sleep(2 * plan.spec.patroni.loop_wait_s + 0.5)
    try:
        yield
    finally:
        leader_now = current_leader(plan) or leader
        converge_dcs(plan, plan.node(leader_now), secrets)


def run_drill(
    plan: StackPlan,
    scenario: Scenario,
    options: DrillOptions | None = None,
    progress: Progress | None = None,
) -> DrillReport:
    options = options or DrillOptions()
    progress = progress or NullProgress()
    secrets = load_secrets_or_explain(plan)
    sup = supervisor_for(plan)
    if iptables.remove_chain(plan.iptables_chain):
        progress.step("removed network rules left by an interrupted drill")
    progress.step("checking that the stack is healthy")
    before = wait_healthy(plan, 120, progress)
    if not before.healthy:
        raise DrillError("the stack is not healthy: " + "; ".join(before.problems))
    tier = data_tier(take_snapshot(plan, sup, secrets))
    assert tier.leader is not None
    primary, sync = tier.leader, tier.sync_standby
    drill_data.prepare(plan, secrets, primary)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    history = History()
    ctx = DrillContext(plan, sup, secrets, history, primary, sync)
    watcher_hold = (
        hold(plan.paths.fencer_hold, 3600, f"drill {scenario.name} without fencing")
        if not options.fencing
        else contextlib.nullcontext()
    )
    with watcher_hold, _failsafe(plan, secrets, primary, scenario.failsafe):
        times = _run_phases(plan, scenario, options, progress, ctx)
    progress.step("checking every node's data")
    verdict, new_primary, timelines = _check(plan, secrets, history)
    return build_report(
        plan=plan,
        scenario=scenario,
        history=history,
        verdict=verdict,
        times=times,
        started_at=started_at,
        old_primary=primary,
        new_primary=new_primary,
        fencing=options.fencing and plan.spec.fencing.enabled,
        fencer_marks=fencer_marks(plan.paths.fencer_log, times["start"], times["end"]),
        timelines=timelines,
    )


def _run_phases(
    plan: StackPlan,
    scenario: Scenario,
    options: DrillOptions,
    progress: Progress,
    ctx: DrillContext,
) -> dict[str, float]:
    history = ctx.history
    monitor = Monitor(plan, _node_dsns(plan, ctx.secrets), history)
    workload = Workload(_targets(plan, ctx.secrets, ctx.primary, scenario.pinned_writer), history)
    times = {"start": _now()}
    monitor.start()
    workload.start()
    try:
        progress.step(f"workload running; warming up {options.warmup_s:g} s")
        _wait(lambda: len(history.acks_of("url")) >= 20, 30, "writes through DATABASE_URL")
        time.sleep(options.warmup_s)
        times["t0"] = _now()
        progress.step(f"injecting {scenario.name}")
        try:
            scenario.inject(ctx)
        except BaseException:
            _heal_quietly(scenario, ctx)
            raise
        times["injected"] = _now()
        try:
            _recover_and_heal(plan, scenario, options, progress, ctx, times)
        except BaseException:
            # Ctrl-C, a deadline, anything: never leave the fault in place.
            if "healed" not in times:
                progress.step("interrupted: healing before exit")
                _heal_quietly(scenario, ctx)
            raise
    finally:
        stuck = workload.stop()
        monitor.stop()
        times["end"] = _now()
        if stuck:
            history.mark("note", f"commits still hanging at the end, sockets shut: {stuck}")
    return times


def _recover_and_heal(
    plan: StackPlan,
    scenario: Scenario,
    options: DrillOptions,
    progress: Progress,
    ctx: DrillContext,
    times: dict[str, float],
) -> None:
    history = ctx.history
    hold_until = times["t0"] + scenario.hold_s(plan)
    if scenario.recover_before_heal:
        times["recovered"] = _recover(history, times["injected"], options, progress)
        _sleep_until(hold_until)
        _heal(scenario, ctx, times, progress)
    else:
        _sleep_until(hold_until)
        _heal(scenario, ctx, times, progress)
        times["recovered"] = _recover(history, times["healed"], options, progress)
    progress.step("waiting until the stack is healthy again")
    after = wait_healthy(plan, options.healthy_deadline_s, progress)
    times["healthy"] = _now()
    if not after.healthy:
        history.mark("note", "not healthy after the deadline: " + "; ".join(after.problems))
        times["unhealthy"] = 1.0
    time.sleep(1.0)


def _recover(history: History, since: float, options: DrillOptions, progress: Progress) -> float:
    progress.step("waiting for writes through DATABASE_URL to flow again")
    at = _wait(
        lambda: steady_writes(history, since + 1.0, options.steady_s, options.max_gap_s),
        options.recovery_deadline_s,
        "steady writes through DATABASE_URL",
        poll_s=0.1,
    )
    history.mark("recovered", "writes through DATABASE_URL flow steadily again", t=at)
    return at


def _heal(
    scenario: Scenario, ctx: DrillContext, times: dict[str, float], progress: Progress
) -> None:
    progress.step("healing")
    scenario.heal(ctx)
    times["healed"] = _now()


def _heal_quietly(scenario: Scenario, ctx: DrillContext) -> None:
    with contextlib.suppress(Exception):
        scenario.heal(ctx)


def _sleep_until(t: float) -> None:
    while (left := t - _now()) > 0:
        time.sleep(min(left, 0.5))


def _check(
    plan: StackPlan, secrets: Secrets, history: History
) -> tuple[Verdict, str | None, dict[str, int | None]]:
    snap = take_snapshot(plan, supervisor_for(plan), secrets)
    leader = data_tier(snap).leader
    timelines = {m.name: m.timeline for m in snap.members}
    if leader is None:
        verdict = Verdict()
        verdict.converged = False
        verdict.problems.append("no leader after the drill: the data could not be checked")
        return verdict, None, timelines
    drill_data.wait_converged(plan, secrets, leader)
    nodes = [
        drill_data.read_node(plan, secrets, n.name, timelines.get(n.name))
        for n in plan.postgres_nodes
    ]
    acks = list(history.acks)
    verdict = check(
        CheckInput(
            primary=leader,
            acked_writes=[a for a in acks if a.writer != "transfer"],
            acked_transfers=[a for a in acks if a.writer == "transfer"],
            nodes=nodes,
            expected_total=drill_data.EXPECTED_TOTAL,
            samples=list(history.samples),
        )
    )
    return verdict, leader, timelines


def fencer_marks(log: Path, start: float, end: float) -> list[dict[str, Any]]:
    """The watcher's decisions taken during the drill (same monotonic clock)."""
    marks = []
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        t = float(record.get("t_mono", 0))
        if start <= t <= end:
            marks.append({"t": t, "text": record.get("sentence", ""), "node": record.get("node")})
    return marks
