"""One drill engine for every scenario: precheck -> load -> inject at T0 -> recover -> heal ->
healthy -> check.

The same monitor (the leader key, every node's own answer to pg_is_in_recovery) and the same
SQL writers (for web drills, a light canary beside the HTTP clients) run in every drill, so
split brain is measured the same way everywhere. Every number in the report is computed from
recorded timestamps; nothing is inferred from how long we slept. A run that errors (the stack
not healthy before, writes that never resume, a node that cannot be read) is a failed run
whose report says why: nothing is dropped from `--repeat` statistics.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import psycopg

from hastack.drills import data as drill_data
from hastack.drills.alerting import heard_enough
from hastack.drills.checker import CheckInput, Verdict, check
from hastack.drills.cluster_loss import loss_allowed_after
from hastack.drills.events import History
from hastack.drills.faults import DrillContext
from hastack.drills.http_workload import HttpTarget, HttpWorkload, ServerWatch
from hastack.drills.monitor import Monitor
from hastack.drills.region_loss import loss_allowed_after as region_loss_allowed_after
from hastack.drills.region_loss import primary_stack
from hastack.drills.report import DrillReport
from hastack.drills.scenarios import Scenario, for_stack
from hastack.drills.timeline import PhaseTimes, ReportInput, alerts_between, build_report
from hastack.drills.workload import ALL_WORKERS, CANARY_WORKERS, Targets, Workload
from hastack.errors import HastackError
from hastack.ops.app_tokens import create_token, revoke_tokens
from hastack.ops.backup import wait_archiving
from hastack.ops.lifecycle import wait_healthy
from hastack.polling import iso_utc, sleep_until
from hastack.runtime.dcs import converge_dcs
from hastack.runtime.files import read_regular
from hastack.runtime.health import data_tier
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack
from hastack.spec.model import StackSpec
from hastack.spec.names import LOAD_TEST_HEADER

VOLUME_CONNECTIONS = 16


@dataclass(frozen=True)
class DrillOptions:
    fencing: bool = True
    """False: hold the watcher from the fault until writes resume (the TTL-bound path)."""
    warmup_s: float = 3.0
    recovery_deadline_s: float = 90.0
    healthy_deadline_s: float = 180.0
    steady_s: float = 2.0
    """Writes must flow this long, gaps under `max_gap_s`, to count as recovered."""
    max_gap_s: float = 0.5
    hold_s: float | None = None
    """Overrides the scenario's hold (tests shorten the long ones)."""


@dataclass
class _Run:
    stack: Stack
    scenario: Scenario
    options: DrillOptions
    progress: Progress
    history: History = field(default_factory=History)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    primary: str | None = None
    volume: dict[str, int] = field(default_factory=dict)
    source: Stack | None = None
    """Region drills: the primary stack (the drill's `stack` is its standby cluster)."""

    @property
    def acks_prefix(self) -> str:
        """The writers whose acknowledgements define "writes flow": DATABASE_URL's for the
        data tier, the HTTP POSTs for the web tier."""
        return "http-post" if self.scenario.tier == "web" else "url"


def run_drill(
    stack: Stack,
    scenario: Scenario,
    options: DrillOptions | None = None,
    progress: Progress | None = None,
) -> DrillReport:
    scenario = for_stack(scenario, stack.venue)
    run = _Run(stack, scenario, options or DrillOptions(), progress or NullProgress())
    clock = stack.clock
    times = PhaseTimes(start=clock.monotonic())
    started_at = iso_utc(clock.wall())
    sync: str | None = None
    try:
        run.primary, sync = _precheck(run)
        drill_data.prepare(run.source or stack, run.primary)
        ctx = DrillContext(stack, run.history, run.primary, sync, source=run.source)
        with ctx.held, _failsafe(run), _loads(run) as loads:
            _phases(run, ctx, loads, times)
    except HastackError as exc:
        # The details are the evidence (a preflight's problems, a program's output).
        run.errors.append("; ".join([exc.what, *exc.details]))
    except Exception as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
    times.end = times.end or clock.monotonic()
    heard_until = _listen_for_alerts(run, times)
    verdict, new_primary, timelines, lost_http = _check(run, reached_fault=times.t0 is not None)
    return build_report(
        ReportInput(
            plan=stack.plan,
            scenario=scenario,
            history=run.history,
            verdict=verdict,
            times=times,
            started_at=started_at,
            old_primary=run.primary,
            new_primary=new_primary,
            # In containers no watcher runs (docs/deploy-swarm.md#fencing).
            fencing=run.options.fencing
            and stack.plan.spec.fencing.enabled
            and not stack.in_containers,
            fencer_marks=fencer_marks(stack, times.start, times.end),
            alert_marks=alert_marks(stack, times.start, heard_until),
            timelines=timelines,
            errors=run.errors,
            notes=run.notes,
            lost_work_orders=lost_http,
            volume=run.volume,
            acks_prefix=run.acks_prefix,
        )
    )


def _precheck(run: _Run) -> tuple[str, str | None]:
    stack, progress = run.stack, run.progress
    if run.scenario.tier == "web" and not (stack.plan.app_instances and stack.plan.app_is_demo):
        raise HastackError(
            "web-tier drills need the demo app (app.module default, app.instances > 0)",
            "hastack scale app=2",
        )
    if stack.netcut().remove():
        progress.step("removed network rules left by an interrupted drill")
    if run.scenario.region:
        return _precheck_region(run)
    progress.step("checking that the stack is healthy")
    before = wait_healthy(stack, 120, progress)
    if not before.healthy:
        raise HastackError(
            "the stack was not healthy before the drill: " + "; ".join(before.problems),
            "hastack status",
        )
    tier = data_tier(stack.snapshot())
    if tier.leader is None:
        raise HastackError("the stack has no leader before the drill", "hastack status")
    return tier.leader, tier.sync_standby


def _precheck_region(run: _Run) -> tuple[str, str | None]:
    """Both stacks healthy: the primary with a leader, this one a standby cluster of it."""
    stack, progress = run.stack, run.progress
    run.source = primary_stack(stack)
    for each, what in ((run.source, "primary"), (stack, "standby")):
        progress.step(f"checking that the {what} stack {each.name} is healthy")
        before = wait_healthy(each, 120, progress)
        if not before.healthy:
            raise HastackError(
                f"the {what} stack {each.name} was not healthy before the drill: "
                + "; ".join(before.problems),
                f"hastack -c {each.plan.paths.applied_spec} status",
            )
    if not data_tier(stack.snapshot()).standby:
        raise HastackError(
            f"stack {stack.name} is not a standby cluster any more (promoted before)",
            "recreate it as a standby: docs/backups.md#standby-cluster-a-second-region",
        )
    tier = data_tier(run.source.snapshot())
    if tier.leader is None:
        raise HastackError(f"the primary stack {run.source.name} has no leader", "status")
    return tier.leader, tier.sync_standby


@contextlib.contextmanager
def _failsafe(run: _Run) -> Iterator[None]:
    """Force Patroni's failsafe_mode for one drill and restore the spec's value after."""
    wanted, stack = run.scenario.failsafe, run.stack
    if wanted is None or wanted == stack.plan.spec.postgres.failsafe_mode or run.primary is None:
        yield
        return
    converge_dcs(stack, run.primary, {"failsafe_mode": wanted})
    # Patroni reads the dynamic configuration once per HA loop: give every member two.
    stack.clock.sleep(2 * stack.plan.spec.patroni.loop_wait_s + 0.5)
    try:
        yield
    finally:
        converge_dcs(stack, stack.leader() or run.primary)


class _Loads:
    """What runs during a drill: the monitor and SQL writers always, HTTP clients (and wrk)
    for web drills."""

    def __init__(self, run: _Run) -> None:
        stack, history, scenario = run.stack, run.history, run.scenario
        assert run.primary is not None
        self.run = run
        web = scenario.tier == "web"
        self.monitor = Monitor(stack, history)
        targets = (
            _region_targets(run.source, stack)
            if run.source is not None
            else _targets(stack, run.primary, scenario.pinned_writer)
        )
        self.sql = Workload(
            targets,
            history,
            interval_s=0.05 if web else 0.01,
            workers=CANARY_WORKERS if web else ALL_WORKERS,
        )
        self.http: HttpWorkload | None = None
        self.watch: ServerWatch | None = None
        self.volume: Any = None
        self.token_id: int | None = None
        if web:
            # A day is plenty; the token is revoked when the drill's load stops.
            issued = create_token(stack, "drill", ["drill-site"], days=1)
            self.token_id = issued.token_id
            target = HttpTarget(
                stack.plan.app_url,
                str(stack.plan.paths.ca_cert),
                issued.token,
                issued.sites[0],
                stack.secrets.load_test_token,
                stack.plan.spec.app.tenant_header,
            )
            self.http = HttpWorkload(target, history)
            self.watch = ServerWatch(stack, history)

    def start(self) -> None:
        self.monitor.start()
        self.sql.start()
        if self.http and self.watch:
            self.watch.start()
            self.http.start()

    def start_volume(self) -> None:
        if self.http and self.run.scenario.volume_load:
            stack = self.run.stack
            self.volume = stack.wrk().start(
                f"{stack.plan.app_url}/health/live",
                duration_s=300,
                connections=VOLUME_CONNECTIONS,
                headers={LOAD_TEST_HEADER: stack.secrets.load_test_token},
            )

    def stop(self) -> None:
        if self.volume is not None:
            result = self.volume.stop()
            self.run.volume = {
                "requests": result.requests,
                "non_2xx": result.non_2xx,
                "socket_errors": result.socket_errors,
            }
        if self.http and self.watch:
            self.http.stop()
            self.watch.stop()
            with contextlib.suppress(HastackError, psycopg.Error):
                revoke_tokens(self.run.stack, token_id=self.token_id)
        stuck = self.sql.stop()
        self.monitor.stop()
        if stuck:
            self.run.history.mark(
                "note", f"commits still hanging at the end, sockets shut: {stuck}"
            )


@contextlib.contextmanager
def _loads(run: _Run) -> Iterator[_Loads]:
    loads = _Loads(run)
    loads.start()
    try:
        yield loads
    finally:
        loads.stop()


def _targets(stack: Stack, primary: str, pinned: bool) -> Targets:
    env = stack.urls()
    return Targets(
        url=env["DATABASE_URL"],
        direct=env["DATABASE_URL_DIRECT"],
        ro=env["DATABASE_URL_RO"],
        pinned=stack.node_url(primary) if pinned else None,
        node_by_address={n.address: n.name for n in stack.plan.postgres_nodes},
        login=lambda: (stack.secrets.app_login, stack.secrets.app_password),
    )


def _region_targets(primary: Stack, standby: Stack) -> Targets:
    """Each URL names both regions, the primary's first (libpq tries them in order), as an
    application deployed in both would; the standby's bundle trusts both stacks' CAs."""
    ca = quote(str(standby.plan.paths.trusted_ca))

    def both(port: Callable[[StackSpec], int], dbname: str) -> str:
        hosts = ",".join(f"{s.plan.services_address}:{port(s.plan.spec)}" for s in stacks)
        return f"postgresql://{hosts}/{dbname}?sslmode=verify-full&sslrootcert={ca}"

    stacks = (primary, standby)
    db = standby.plan.spec.postgres.database
    return Targets(
        url=both(lambda spec: spec.pgbouncer.port, db),
        direct=both(lambda spec: spec.haproxy.rw_port, db),
        ro=both(lambda spec: spec.pgbouncer.port, f"{db}_ro"),
        pinned=None,
        node_by_address={
            n.address: n.name for s in (primary, standby) for n in s.plan.postgres_nodes
        },
        login=lambda: (standby.secrets.app_login, standby.secrets.app_password),
    )


def _phases(run: _Run, ctx: DrillContext, loads: _Loads, times: PhaseTimes) -> None:
    stack, scenario, options, progress = run.stack, run.scenario, run.options, run.progress
    clock, history = stack.clock, run.history
    warmup_s = max(options.warmup_s, scenario.warmup_s(stack.plan))
    progress.step(f"load running; warming up {warmup_s:g} s")
    stack.until(
        lambda: len(history.acks_of_prefix(run.acks_prefix)) >= 20,
        what="the first acknowledged writes",
        timeout_s=30,
        hint="hastack status",
    )
    loads.start_volume()
    clock.sleep(warmup_s)
    times.t0 = clock.monotonic()
    hold_s = options.hold_s if options.hold_s is not None else scenario.hold_s(stack.plan)
    unfenced = contextlib.ExitStack()
    if not options.fencing:
        unfenced.enter_context(stack.hold(3600, f"drill {scenario.name} without the watcher"))
    progress.step(f"injecting {scenario.name}")
    try:
        scenario.inject(ctx)
        times.injected = clock.monotonic()
        healthy_since: float | None = None
        if scenario.recover_before_heal:
            times.recovered = _recover(run, times.injected)
            unfenced.close()
            healthy_since = _hold_watching_health(run, times.t0 + hold_s)
            _heal(run, ctx, times)
        else:
            sleep_until(times.t0 + hold_s, clock)
            _heal(run, ctx, times)
            unfenced.close()
            times.recovered = _recover(run, times.healed or clock.monotonic())
    except BaseException:
        # Ctrl-C, a deadline, anything: never leave the fault in place.
        if times.healed is None:
            progress.step("interrupted: ending the fault before exit")
            with contextlib.suppress(Exception):
                scenario.heal(ctx)
        raise
    finally:
        unfenced.close()
    progress.step("waiting until the stack is healthy again, every node streaming")
    asked = clock.monotonic()
    after = wait_healthy(stack, options.healthy_deadline_s, progress)
    if after.healthy:
        progress.step("waiting until WAL archiving works on the leader")
        left_s = max(1.0, options.healthy_deadline_s - (clock.monotonic() - asked))
        blocked = wait_archiving(stack, left_s)
        if blocked is not None:
            after = replace(after, health="degraded", problems=(blocked,))
    if after.healthy:
        # Healthy at once after the fault ended, and already before (a fenced node brought
        # back while the rest of the node was still frozen): it was healthy since then.
        at_once = clock.monotonic() - asked < 1.0
        times.healthy = healthy_since if at_once and healthy_since else clock.monotonic()
    else:
        run.notes.append(
            f"not healthy within {options.healthy_deadline_s:.0f} s of the fault ending: "
            + "; ".join(after.problems)
        )
    clock.sleep(1.0)  # a last second of load after healthy, for the chart
    times.end = clock.monotonic()


def _hold_watching_health(run: _Run, until_t: float) -> float | None:
    """Keep the fault in place until `until_t`, looking at the stack's health every second:
    when it has healed itself with the fault still in place, since when it has been healthy
    (None otherwise)."""
    clock, healthy_since = run.stack.clock, None
    while clock.monotonic() < until_t:
        if not run.stack.assess().healthy:
            healthy_since = None
        elif healthy_since is None:
            healthy_since = clock.monotonic()
        clock.sleep(min(1.0, max(0.0, until_t - clock.monotonic())))
    return healthy_since


def _heal(run: _Run, ctx: DrillContext, times: PhaseTimes) -> None:
    run.progress.step("ending the fault")
    run.scenario.heal(ctx)
    times.healed = run.stack.clock.monotonic()


def _recover(run: _Run, since: float) -> float:
    what = "POSTs through HAProxy" if run.scenario.tier == "web" else "writes through DATABASE_URL"
    run.progress.step(f"waiting for {what} to flow again")
    options = run.options
    at = run.stack.until(
        lambda: steady_writes(
            run.history,
            since + 1.0,
            options.steady_s,
            options.max_gap_s,
            run.acks_prefix,
            run.stack.clock.monotonic(),
        ),
        what=f"steady {what}",
        timeout_s=options.recovery_deadline_s,
        interval_s=0.1,
        hint="hastack status",
    )
    run.history.mark("recovered", f"{what} flow steadily again", t=at)
    return at


def steady_writes(
    history: History, since: float, steady_s: float, max_gap_s: float, prefix: str, now: float
) -> bool:
    """Acks of the writers named `prefix`* cover the last `steady_s` seconds (after `since`)
    with no gap over `max_gap_s`."""
    if now - since < steady_s:
        return False
    times = sorted(a.t_end for a in history.acks_of_prefix(prefix) if a.t_end >= now - steady_s)
    if not times or now - times[-1] > max_gap_s or times[0] - (now - steady_s) > max_gap_s:
        return False
    return all(b - a <= max_gap_s for a, b in itertools.pairwise(times))


def _check(
    run: _Run, reached_fault: bool
) -> tuple[Verdict, str | None, dict[str, int | None], list[int]]:
    """The consistency checker over every node, and (web drills) the work orders."""
    if not reached_fault:  # nothing of the fault to check
        return _unchecked("the drill stopped before its fault"), None, {}, []
    run.progress.step("checking every node's data")
    stack, history = run.stack, run.history
    try:
        snap = stack.snapshot()
    except HastackError as exc:
        run.errors.append(exc.what)
        return _unchecked("the stack could not be read after the drill"), None, {}, []
    leader = data_tier(snap).leader
    timelines = {m.name: m.timeline for m in snap.members}
    if leader is None:
        return (
            _unchecked("no leader after the drill: the data could not be checked"),
            None,
            timelines,
            [],
        )
    try:
        drill_data.wait_converged(stack, leader)
        nodes = [
            drill_data.read_node(stack, n.name, timelines.get(n.name))
            for n in stack.plan.postgres_nodes
        ]
        lost = _lost_work_orders(stack, history, leader) if run.scenario.tier == "web" else []
    except HastackError as exc:
        run.errors.append(exc.what)
        return _unchecked(f"the data could not be checked: {exc.what}"), leader, timelines, []
    acks = [a for a in history.acks if not a.writer.startswith("http-")]
    verdict = check(
        CheckInput(
            primary=leader,
            acked_writes=[a for a in acks if a.writer != "transfer"],
            acked_transfers=[a for a in acks if a.writer == "transfer"],
            nodes=nodes,
            expected_total=drill_data.EXPECTED_TOTAL,
            samples=list(history.samples),
            loss_allowed_after=_loss_allowed_after(run),
        )
    )
    return verdict, leader, timelines, lost


def _loss_allowed_after(run: _Run) -> float | None:
    """Drills whose fault loses the newest acknowledged writes by design: since when."""
    expect = run.scenario.expect
    if expect.restored_within_archive_bound:
        return loss_allowed_after(run.stack.plan, run.history)
    if expect.promoted_within_lag:
        return region_loss_allowed_after(run.stack.plan, run.history)
    return None


def _unchecked(problem: str) -> Verdict:
    verdict = Verdict()
    verdict.converged = False
    verdict.problems.append(problem)
    return verdict


def _lost_work_orders(stack: Stack, history: History, leader: str) -> list[int]:
    acked = {a.op_id for a in history.acks_of_prefix("http-post")}
    if not acked:
        return []
    with stack.connect(leader) as conn:
        rows = conn.execute("SELECT id FROM work_orders WHERE id = ANY(%s)", (sorted(acked),))
        present = {int(str(r[0])) for r in rows}
    return sorted(acked - present)


def _listen_for_alerts(run: _Run, times: PhaseTimes) -> float:
    """Keep listening to the alert receiver after the drill when the scenario promises
    something about alerts (drills/alerting.py): until every expected alert arrived (or its
    deadline passed) and a drill that must page nobody has been quiet long enough. Returns
    the end of the window the report's alerts come from."""
    stack, promise = run.stack, run.scenario.expect.alerts
    end = times.end or stack.clock.monotonic()
    if not promise.any or times.t0 is None or run.errors or not stack.plan.monitoring_enabled:
        return end
    t0 = times.t0
    what = ", ".join(promise.fires) or "no page"
    run.progress.step(
        f"listening to Alertmanager ({what}), up to {promise.listen_s():.0f} s after the fault"
    )

    def heard() -> bool:
        now = stack.clock.monotonic()
        marks = alert_marks(stack, times.start, now)
        return heard_enough(promise, marks, t0, now)

    while not heard():
        stack.clock.sleep(1.0)
    return stack.clock.monotonic()


def alert_marks(stack: Stack, start: float, end: float) -> list[dict[str, Any]]:
    """The notifications Alertmanager sent to hastack's receiver during the drill, one mark
    per alert and state (`t` on the drill's monotonic clock)."""
    if not stack.plan.monitoring_enabled:
        return []
    raw = read_regular(stack.host_path(stack.plan.paths.alerts_log))
    if raw is None:
        return []
    clock = stack.clock
    offset = clock.wall() - clock.monotonic()  # wall = monotonic + offset
    return alerts_between(raw.decode(errors="replace").splitlines(), start, end, offset)


def fencer_marks(stack: Stack, start: float, end: float) -> list[dict[str, Any]]:
    """The watcher's decisions taken during the drill (same monotonic clock)."""
    marks = []
    try:
        lines = stack.plan.paths.fencer_log.read_text().splitlines()
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
