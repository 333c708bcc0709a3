"""Web-tier drills: faults under HTTP load, seen by the clients.

Same shape and report format as the database drills: precheck -> load -> inject at T0 ->
recovery -> heal -> healthy -> check. The check: every work order acknowledged with a 201
exists on the primary; failed requests and the largest gap between successful responses are
reported, per client kind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hastack.drills import faults
from hastack.drills.events import History
from hastack.drills.faults import Action, DrillContext, nothing
from hastack.drills.http_workload import HttpTarget, HttpWorkload
from hastack.drills.metrics import buckets, error_kinds, failures_between, largest_gap
from hastack.drills.report import DrillReport, WriterStats
from hastack.drills.runner import DrillError, fencer_marks, steady_writes
from hastack.drills.timeline import timeline_events
from hastack.ops.app import restart_app
from hastack.ops.app_tokens import create_token
from hastack.ops.env import load_secrets_or_explain
from hastack.ops.lifecycle import wait_healthy
from hastack.render.haproxy import APP_BACKEND, LOAD_TEST_HEADER
from hastack.runtime.apptier import reload_haproxy
from hastack.runtime.database import superuser_connect
from hastack.runtime.health import data_tier
from hastack.runtime.lifecycle import programs_of
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.snapshot import supervisor_for, take_snapshot
from hastack.spec.plan import StackPlan
from hastack.tools import haproxy_api


@dataclass(frozen=True)
class HttpScenario:
    name: str
    summary: str
    inject: Action
    heal: Action = nothing
    hold_s: float = 0.0
    zero_failed_reads: bool = False
    """Idempotent requests must never fail (HAProxy retries them elsewhere)."""
    zero_failed_requests: bool = False
    volume_load: bool = False
    """Also run wrk against /health/live through HAProxy, counting non-2xx responses."""
    recover_before_heal: bool = False
    """Heal only once POSTs flow again (a lost node: healing earlier races the fencer); as
    `Scenario.recover_before_heal`."""
    slow: bool = False


def _kill_app_instance(ctx: DrillContext) -> None:
    name = ctx.plan.app_instances[0].name
    pid = ctx.sup.process(f"{name}:{name}").pid
    os.kill(pid, signal.SIGKILL)
    ctx.history.mark("fault", f"SIGKILL app instance {name} (pid {pid}); supervisord restarts it")


def _stop_redis(ctx: DrillContext) -> None:
    ctx.sup.stop("redis:redis")
    ctx.history.mark("fault", "Redis stopped: sessions, cache and app rate limits lose it")


def _start_redis(ctx: DrillContext) -> None:
    ctx.sup.start("redis:redis")
    ctx.history.mark("heal", "Redis started again")


HAPROXY_RELOADS = 10


def _reload_haproxy(ctx: DrillContext) -> None:
    for n in range(1, HAPROXY_RELOADS + 1):
        reload_haproxy(ctx.plan, ctx.sup, programs_of(ctx.plan, "haproxy")[0])
        ctx.history.mark("fault", f"HAProxy reload {n}/{HAPROXY_RELOADS}")
        time.sleep(2)


def _rolling_restart(ctx: DrillContext) -> None:
    ctx.history.mark("fault", "rolling restart of every app instance")
    result = restart_app(ctx.plan, rolling=True)
    ctx.history.mark("note", f"rolling restart done in {result.elapsed_s:.1f} s")


HTTP_SCENARIOS: dict[str, HttpScenario] = {
    s.name: s
    for s in [
        HttpScenario(
            "app-instance-kill",
            "SIGKILL one app instance under HTTP load; supervisord restarts it",
            inject=_kill_app_instance,
            zero_failed_reads=True,
        ),
        HttpScenario(
            "redis-down",
            "Redis stopped for 10 s under HTTP load: the app keeps serving, degraded",
            inject=_stop_redis,
            heal=_start_redis,
            hold_s=10.0,
            zero_failed_requests=True,
        ),
        HttpScenario(
            "rolling-restart",
            "hastack app restart --rolling under HTTP load",
            inject=_rolling_restart,
            zero_failed_requests=True,
            volume_load=True,
        ),
        HttpScenario(
            "haproxy-reload",
            f"{HAPROXY_RELOADS} HAProxy reloads, 2 s apart, under HTTP load",
            inject=_reload_haproxy,
            zero_failed_requests=True,
            volume_load=True,
        ),
        HttpScenario(
            "db-failover-under-http-load",
            "the PostgreSQL primary's node lost under HTTP load: the error window clients see",
            inject=lambda ctx: faults.lose_node(ctx, ctx.primary),
            heal=lambda ctx: faults.restore_node(ctx, ctx.primary),
            recover_before_heal=True,
        ),
    ]
}


class ServerWatch(threading.Thread):
    """HAProxy's view of each app instance every 100 ms; state changes become marks."""

    def __init__(self, plan: StackPlan, history: History) -> None:
        super().__init__(name="http-servers", daemon=True)
        self.plan = plan
        self.history = history
        self.stop_event = threading.Event()

    def run(self) -> None:
        last: dict[str, str] = {}
        while not self.stop_event.is_set():
            try:
                states = haproxy_api.server_states(self.plan.paths.haproxy_socket)
            except haproxy_api.HAProxyUnavailable:
                states = []
            for s in states:
                if s.backend == APP_BACKEND and last.get(s.server) != s.status:
                    self.history.mark("haproxy", f"{s.server}: {s.status}", node=s.server)
                    last[s.server] = s.status
            self.stop_event.wait(0.1)


@dataclass
class VolumeLoad:
    """wrk through HAProxy (TLS, keep-alive) for the length of the fault."""

    process: subprocess.Popen[str] | None = None
    result: dict[str, int] = field(default_factory=dict)

    def start(self, url: str, load_token: str, duration_s: int) -> None:
        self.process = subprocess.Popen(
            [
                "wrk",
                "-t1",
                "-c16",
                f"-d{duration_s}s",
                "-H",
                f"{LOAD_TEST_HEADER}: {load_token}",
                url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=30)
        total = re.search(r"(\d+) requests in", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
        )
        self.result = {
            "requests": int(total.group(1)) if total else 0,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        }


def run_http_drill(
    plan: StackPlan, scenario: HttpScenario, progress: Progress | None = None
) -> DrillReport:
    progress = progress or NullProgress()
    if not plan.app_instances or not plan.app_is_demo:
        raise DrillError("web-tier drills need the demo app (app.module default, instances > 0)")
    secrets = load_secrets_or_explain(plan)
    sup = supervisor_for(plan)
    before = wait_healthy(plan, 120, progress)
    if not before.healthy:
        raise DrillError("the stack is not healthy: " + "; ".join(before.problems))
    tier = data_tier(take_snapshot(plan, sup, secrets))
    assert tier.leader is not None
    issued = create_token(plan, "drill", ["drill-site"])
    target = HttpTarget(
        plan.app_url,
        str(plan.paths.ca_cert),
        issued.token,
        issued.sites[0],
        secrets.load_test_token,
        plan.spec.app.tenant_header,
    )
    history = History()
    ctx = DrillContext(plan, sup, secrets, history, tier.leader, tier.sync_standby)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    workload, watch, volume = (
        HttpWorkload(target, history),
        ServerWatch(plan, history),
        VolumeLoad(),
    )
    times: dict[str, float] = {"start": time.monotonic()}
    watch.start()
    workload.start()
    try:
        _phases(plan, scenario, ctx, volume, target, times, progress)
    finally:
        workload.stop()
        volume.stop()
        watch.stop_event.set()
        times["end"] = time.monotonic()
    progress.step("checking that every acknowledged work order exists")
    lost = _lost_work_orders(plan, secrets, history)
    return _report(plan, scenario, history, times, started_at, lost, volume.result, tier.leader)


def _phases(
    plan: StackPlan,
    scenario: HttpScenario,
    ctx: DrillContext,
    volume: VolumeLoad,
    target: HttpTarget,
    times: dict[str, float],
    progress: Progress,
) -> None:
    history = ctx.history
    progress.step("HTTP load running; warming up 3 s")
    deadline = time.monotonic() + 30
    while len(history.acks_of("http-post1")) < 20:
        if time.monotonic() > deadline:
            raise DrillError("no successful POST through HAProxy within 30 s")
        time.sleep(0.1)
    if scenario.volume_load:
        volume.start(f"{target.base_url}/health/live", target.load_token, 120)
    time.sleep(3)
    times["t0"] = time.monotonic()
    progress.step(f"injecting {scenario.name}")
    try:
        scenario.inject(ctx)
        times["injected"] = time.monotonic()
        _sleep_until(times["t0"] + scenario.hold_s)
        if not scenario.recover_before_heal:
            scenario.heal(ctx)
            times["healed"] = time.monotonic()
        end = time.monotonic() + 90
        while not _steady(history, times["injected"]):
            if time.monotonic() > end:
                raise DrillError("HTTP writes did not flow steadily again within 90 s")
            time.sleep(0.1)
        times["recovered"] = time.monotonic()
        history.mark("recovered", "POSTs through HAProxy flow steadily again")
        if scenario.recover_before_heal:
            scenario.heal(ctx)
            times["healed"] = time.monotonic()
    except BaseException:
        if "healed" not in times:
            scenario.heal(ctx)
        raise
    if volume.process is not None:
        volume.stop()
    progress.step("waiting until the stack is healthy again")
    after = wait_healthy(plan, 180, progress)
    times["healthy"] = time.monotonic()
    if not after.healthy:
        history.mark("note", "not healthy after the deadline: " + "; ".join(after.problems))
        times["unhealthy"] = 1.0
    time.sleep(1)


def _steady(history: History, since: float) -> bool:
    return steady_writes(history, since + 1.0, 2.0, 0.5, prefix="http-post")


def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def _lost_work_orders(plan: StackPlan, secrets: Any, history: History) -> list[int]:
    acked = {a.op_id for a in history.acks if a.writer.startswith("http-post")}
    leader = data_tier(take_snapshot(plan, supervisor_for(plan), secrets)).leader
    if leader is None or not acked:
        return sorted(acked) if leader is None else []
    with superuser_connect(plan, plan.node(leader), secrets, plan.spec.postgres.database) as conn:
        present = {
            int(str(r[0]))
            for r in conn.execute("SELECT id FROM work_orders WHERE id = ANY(%s)", (sorted(acked),))
        }
    return sorted(acked - present)


def _report(
    plan: StackPlan,
    scenario: HttpScenario,
    history: History,
    times: dict[str, float],
    started_at: str,
    lost: list[int],
    volume: dict[str, int],
    old_primary: str,
) -> DrillReport:
    t0, end = times["t0"], times["end"]
    writers: dict[str, WriterStats] = {}
    for name in sorted({a.writer for a in history.acks} | {f.writer for f in history.failures}):
        acks = history.acks_of(name)
        gap = largest_gap(acks, t0, end)
        writers[name] = WriterStats(
            len(acks),
            failures_between(history.failures, name, t0, end),
            gap.gap_s,
            None if gap.rto_s == float("inf") else gap.rto_s,
            error_kinds(history.failures, name, t0, end),
        )
    posts = sorted(
        (a for a in history.acks if a.writer.startswith("http-post")), key=lambda a: a.t_end
    )
    gap = largest_gap(posts, t0, end)
    failed_reads = sum(w.errors for n, w in writers.items() if n.startswith("http-get"))
    failed = sum(w.errors for w in writers.values())
    expectations = []
    if scenario.zero_failed_reads:
        expectations.append(
            {"what": f"no failed GET (saw {failed_reads})", "ok": failed_reads == 0}
        )
    if scenario.zero_failed_requests:
        expectations.append({"what": f"no failed request (saw {failed})", "ok": failed == 0})
    if volume:
        bad = volume.get("non_2xx", 0) + volume.get("socket_errors", 0)
        expectations.append(
            {
                "what": f"wrk: no non-2xx or socket error in {volume.get('requests', 0)} requests",
                "ok": bad == 0,
            }
        )
    reasons = [f"{len(lost)} acknowledged work orders missing"] if lost else []
    if times.get("unhealthy"):
        reasons.append("the stack was not healthy again within 180 s")
    reasons += [f"expectation not met: {e['what']}" for e in expectations if not e["ok"]]
    tier = data_tier(take_snapshot(plan, supervisor_for(plan), None))
    timeline = timeline_events(
        history, fencer_marks(plan.paths.fencer_log, times["start"], end), t0
    )
    start = t0 - 3.0
    return DrillReport(
        scenario=scenario.name,
        summary=scenario.summary,
        started_at=started_at,
        passed=not reasons,
        failure_reasons=reasons,
        write_gap_s=gap.gap_s,
        rto_s=None if gap.rto_s == float("inf") else gap.rto_s,
        rpo_lost_acked_writes=len(lost),
        split_brain=False,
        acked_writes=len(posts),
        errors=failed,
        old_primary=old_primary,
        new_primary=tier.leader,
        fencing=plan.spec.fencing.enabled,
        writers=writers,
        checker={"lost_acked_work_orders": lost[:20], "load": volume, "problems": reasons},
        expectations=expectations,
        timeline=timeline,
        series={
            "bucket_s": 0.1,
            "start_s": -3.0,
            "acks": buckets([a.t_end for a in history.acks], start, end, 0.1),
            "errors": buckets([f.t for f in history.failures], start, end, 0.1),
        },
        durations={
            k: round(times[k] - t0, 3) for k in ("healed", "recovered", "healthy") if k in times
        },
    )
