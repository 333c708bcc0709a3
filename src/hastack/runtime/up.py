"""`hastack up`: bring a stack to its spec, in dependency order, waiting for real readiness.

Idempotent: a second run finds every file equal and every program running, and says so.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from hastack.demo.migrations import demo_migrations
from hastack.render.connection import connection_settings
from hastack.render.files import RenderedFile, render_stack
from hastack.render.programs import Program, stack_programs
from hastack.render.secrets import Secrets
from hastack.runtime import secret_store
from hastack.runtime.apptier import (
    app_servers,
    drain_quietly,
    instance_ready,
    prepare_http,
    reload_haproxy,
    replace_rolling,
    rolling_restart,
)
from hastack.runtime.database import DatabaseError, ensure_database
from hastack.runtime.dcs import converge_dcs
from hastack.runtime.fencer import hold
from hastack.runtime.files import write_atomic
from hastack.runtime.health import data_tier
from hastack.runtime.layout import prepare_dirs
from hastack.runtime.lifecycle import current_leader, ensure_started, programs_of
from hastack.runtime.migrations import apply_migrations
from hastack.runtime.ownership import claim_state_dir, ensure_users
from hastack.runtime.preflight import preflight
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.snapshot import StackSnapshot, supervisor_for, take_snapshot
from hastack.runtime.supervisor import Supervisor
from hastack.runtime.validate import validate_rendered
from hastack.runtime.waits import WaitTimeout, wait_for
from hastack.spec.plan import StackPlan
from hastack.tools import redis_probe

T = TypeVar("T")

RELOAD_SIGNALS = {"patroni": "HUP", "pgbouncer": "HUP"}
"""How each component picks up a changed config without a restart (Redis needs a restart)."""


class UpError(Exception):
    def __init__(self, what: str, hint: str = "") -> None:
        self.what = what
        self.hint = hint
        super().__init__(what + (f"\n    next: {hint}" if hint else ""))


@dataclass
class UpResult:
    elapsed_s: float = 0.0
    created_users: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    dcs_patch: dict[str, Any] = field(default_factory=dict)
    ready_at_s: dict[str, float] = field(default_factory=dict)
    """Seconds from the start of `up` until each readiness milestone."""
    leader: str | None = None
    migrations: list[str] = field(default_factory=list)

    @property
    def nothing_changed(self) -> bool:
        return not (
            self.created_users
            or self.changed_files
            or self.started
            or self.reloaded
            or self.dcs_patch
        )


class _Run:
    """State of one `up` run: the plan, its clock and what it has done so far."""

    def __init__(self, plan: StackPlan, progress: Progress) -> None:
        self.plan = plan
        self.progress = progress
        self.sup: Supervisor = supervisor_for(plan)
        self.t0 = time.monotonic()
        self.result = UpResult()
        self.secrets: Secrets | None = None

    def since(self) -> float:
        return time.monotonic() - self.t0

    def milestone(self, name: str, message: str) -> None:
        self.result.ready_at_s[name] = round(self.since(), 2)
        self.progress.done(f"{message} ({self.since():.1f} s)")

    def snapshot(self, services: bool = False) -> StackSnapshot:
        return take_snapshot(self.plan, self.sup, self.secrets if services else None)

    def wait(
        self, check: Callable[[], tuple[T | None, str]], what: str, timeout_s: float, hint: str
    ) -> T:
        self.progress.step(f"waiting for {what}")
        try:
            return wait_for(check, what=what, timeout_s=timeout_s, interval_s=0.2)
        except WaitTimeout as exc:
            raise UpError(str(exc), hint) from None


def up(plan: StackPlan, progress: Progress | None = None) -> UpResult:
    run = _Run(plan, progress or NullProgress())
    preflight(plan)
    _prepare(run)
    files = _render_and_write(run)
    # up stops and starts programs itself: the fencing watcher must not take that for a
    # dead leader.
    with hold(plan.paths.fencer_hold, 600, "hastack up"):
        was_running = _ensure_supervisor(run)
        _start_data_tier(run)
        _start_services(run)
        if was_running and _reload_changed(run, files):
            _wait_services(run)
    run.result.elapsed_s = round(run.since(), 2)
    return run.result


def _prepare(run: _Run) -> None:
    plan = run.plan
    run.progress.step(f"preparing {plan.paths.state_dir}")
    marker = claim_state_dir(plan)
    run.result.created_users = ensure_users(plan, marker)
    prepare_dirs(plan)
    run.secrets = secret_store.load_or_create(plan.paths.secrets_dir)
    if plan.app_instances:
        prepare_http(plan)


def _render_and_write(run: _Run) -> list[RenderedFile]:
    assert run.secrets is not None
    run.progress.step("rendering and checking configs (haproxy -c, patroni, pgbouncer)")
    files = render_stack(run.plan, run.secrets)
    validate_rendered(run.plan, files, dcs_running=False)
    changed = [f for f in files if write_atomic(f.path, f.content, f.owner, f.mode)]
    _write_fencer_launcher(run.plan)
    run.result.changed_files = [str(f.path) for f in changed]
    run.progress.done(f"configs written ({len(changed)} changed of {len(files)})")
    return changed


def _write_fencer_launcher(plan: StackPlan) -> None:
    """The watcher runs with the Python hastack itself runs from (an environment fact, so the
    runtime writes it, not a renderer)."""
    text = (
        "#!/bin/sh\n# Written by `hastack up`: starts the fencing watcher with hastack's Python.\n"
        f'exec {shlex.quote(sys.executable)} -m hastack.runtime.fencer "$@"\n'
    )
    write_atomic(plan.paths.fencer_launcher, text, "root", 0o700)


def _ensure_supervisor(run: _Run) -> bool:
    """Start supervisord, or make a running one pick up a changed config. True if it was
    already running."""
    sup = run.sup
    if not sup.is_running():
        run.progress.step("starting supervisord")
        sup.start_daemon()
        return False
    added, changed, removed = sup.reload_config()
    for group in removed:
        # An app instance scaled away: no new requests first, then stop it.
        drain_quietly(plan=run.plan, name=group)
        sup.stop_group(group)
        sup.remove_group(group)
    for group in added:
        sup.add_group(group)
    _replace_changed_groups(run, changed)
    return True


def _replace_changed_groups(run: _Run, changed: list[str]) -> None:
    """A changed program definition applies only to a re-added group. Services are simply
    replaced; nodes one at a time, replicas before the leader, each back (etcd quorum,
    Patroni streaming) before the next, so the cluster keeps quorum and a leader."""
    plan, sup = run.plan, run.sup
    node_names = {n.name for n in plan.nodes}
    app_names = {i.name for i in plan.app_instances}
    leader = current_leader(plan)
    nodes = sorted((g for g in changed if g in node_names), key=lambda g: g == leader)
    for group in (g for g in changed if g not in node_names | app_names):
        sup.stop_group(group)
        sup.remove_group(group)
        sup.add_group(group)
    apps = [p for p in programs_of(plan, "app") if p.group in changed]
    if apps:
        run.progress.step("applying changed app definitions, one instance at a time")
        replace_rolling(plan, sup, apps, run.progress)
    for group in nodes:
        run.progress.step(f"applying the changed program definition of {group}")
        programs = [p for p in stack_programs(plan) if p.group == group]
        for program in sorted(programs, key=lambda p: p.component != "patroni"):
            sup.stop(program.process_name)  # Patroni before its etcd member
        sup.remove_group(group)
        sup.add_group(group)
        _start(run, sorted(programs, key=lambda p: p.component != "etcd"))
        run.wait(
            lambda: _replicas_streaming(run),
            f"{group} back in the cluster",
            timeout_s=180,
            hint=f"hastack logs {group} patroni",
        )


def _start(run: _Run, programs: list[Program]) -> None:
    started = ensure_started(run.sup, programs)
    if started:
        run.progress.step("starting " + ", ".join(started))
    run.result.started += started


def _start_data_tier(run: _Run) -> None:
    plan = run.plan
    _start(run, programs_of(plan, "etcd"))
    run.wait(
        lambda: _etcd_quorum(run),
        "etcd quorum",
        timeout_s=30,
        hint="hastack logs pg1 etcd",
    )
    run.milestone("etcd_quorum", "etcd has quorum")

    _start(run, programs_of(plan, "patroni"))
    leader = run.wait(
        lambda: _leader(run), "a Patroni leader", timeout_s=90, hint="hastack logs pg1 patroni"
    )
    run.result.leader = leader
    run.milestone("leader", f"{leader} is the leader")

    secrets = run.secrets
    assert secrets is not None
    _retry(lambda: ensure_database(plan, plan.node(leader), secrets), DatabaseError)
    run.result.dcs_patch = converge_dcs(plan, plan.node(leader), secrets)
    if run.result.dcs_patch:
        run.progress.done(f"Patroni dynamic config updated: {sorted(run.result.dcs_patch)}")
    if plan.app_is_demo and plan.app_instances:
        applied = apply_migrations(plan, plan.node(leader), secrets, demo_migrations())
        run.result.migrations = applied
        if applied:
            run.progress.done(f"migrations applied: {', '.join(applied)}")

    if len(plan.postgres_nodes) > 1:
        run.wait(
            lambda: _replicas_streaming(run),
            "replicas streaming",
            timeout_s=180,
            hint="hastack status; hastack logs pg2 patroni",
        )
        run.milestone("replicas", "replicas streaming, synchronous standby in place")


def _etcd_quorum(run: _Run) -> tuple[bool | None, str]:
    snap = run.snapshot()
    healthy = [m.name for m in snap.etcd if m.healthy]
    if len(healthy) > len(snap.etcd) // 2:
        return True, ""
    return None, f"healthy members: {healthy or 'none'}"


def _leader(run: _Run) -> tuple[str | None, str]:
    snap = run.snapshot()
    tier = data_tier(snap)
    seen = ", ".join(f"{m.name}={m.role}/{m.state}" for m in snap.members)
    return tier.leader, f"leader key {snap.leader_key!r}; members {seen}"


def _replicas_streaming(run: _Run) -> tuple[bool | None, str]:
    snap = run.snapshot()
    tier = data_tier(snap)
    want = len(run.plan.postgres_nodes) - 1
    sync_ok = tier.sync_standby is not None or not run.plan.spec.postgres.synchronous_mode
    seen = ", ".join(f"{m.name}={m.role}/{m.state}" for m in snap.members)
    if tier.leader and len(tier.streaming) == want and sync_ok:
        return True, seen
    return None, seen


def _start_services(run: _Run) -> None:
    plan = run.plan
    _start(run, programs_of(plan, "haproxy"))
    _wait_haproxy(run)
    run.milestone("haproxy", "HAProxy routes to the leader and replicas")
    _start(run, programs_of(plan, "pgbouncer"))
    _wait_pgbouncer(run)
    run.milestone("pgbouncer", "DATABASE_URL answers")
    _start(run, programs_of(plan, "redis"))
    _wait_redis(run)
    run.milestone("redis", "Redis answers")
    if plan.app_instances:
        _start(run, programs_of(plan, "app"))
        _wait_app(run)
        run.milestone("app", f"{len(plan.app_instances)} app instances ready behind HAProxy")
    _start(run, programs_of(plan, "fencer"))
    _wait_all_running(run)


def _wait_services(run: _Run) -> None:
    """After reloads: every service answers again."""
    _wait_haproxy(run)
    _wait_pgbouncer(run)
    _wait_redis(run)
    if run.plan.app_instances:
        _wait_app(run)
    _wait_all_running(run)
    run.progress.done("services answer after the reload")


def _wait_app(run: _Run) -> None:
    run.wait(lambda: _app_in_rotation(run), "app instances in rotation", 60, "hastack logs app1")


def _app_in_rotation(run: _Run) -> tuple[bool | None, str]:
    plan = run.plan
    not_ready = [i.name for i in plan.app_instances if not instance_ready(plan, i)]
    servers = app_servers(plan)
    down = [i.name for i in plan.app_instances if not (i.name in servers and servers[i.name].up)]
    if not not_ready and not down:
        return True, ""
    return None, f"not ready: {not_ready}; not up in HAProxy: {down}"


def _wait_haproxy(run: _Run) -> None:
    run.wait(lambda: _haproxy_routes(run), "HAProxy backends", 20, "hastack logs haproxy")


def _wait_pgbouncer(run: _Run) -> None:
    run.wait(
        lambda: _pgbouncer_query(run), "a query through PgBouncer", 20, "hastack logs pgbouncer"
    )


def _wait_redis(run: _Run) -> None:
    run.wait(lambda: _redis_ping(run), "Redis", 20, "hastack logs redis")


def _wait_all_running(run: _Run) -> None:
    # supervisord calls a program RUNNING only after startsecs; wait so `status` agrees.
    run.wait(lambda: _all_running(run), "every program RUNNING", 15, "hastack status")


def _all_running(run: _Run) -> tuple[bool | None, str]:
    pending = [p.process_name for p in run.sup.processes() if not p.running]
    return (None, f"not yet running: {pending}") if pending else (True, "")


def _haproxy_routes(run: _Run) -> tuple[bool | None, str]:
    snap = run.snapshot(services=True)
    if snap.haproxy_error:
        return None, snap.haproxy_error
    tier = data_tier(snap)
    rw = [s.server for s in snap.haproxy if s.backend == "pg_primary" and s.up]
    ro = [s.server for s in snap.haproxy if s.backend == "pg_replicas" and s.up]
    seen = f"read-write up: {rw}, read-only up: {ro}"
    if tier.leader and rw == [tier.leader] and len(ro) == len(tier.streaming):
        return True, seen
    return None, seen


def _pgbouncer_query(run: _Run) -> tuple[bool | None, str]:
    assert run.secrets is not None
    url = connection_settings(run.plan, run.secrets)["DATABASE_URL"]
    try:
        # prepare_threshold=None: transaction pooling cannot keep prepared statements.
        with psycopg.connect(url, connect_timeout=2, prepare_threshold=None) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return None, str(exc).strip()[:200]
    return True, ""


def _redis_ping(run: _Run) -> tuple[bool | None, str]:
    assert run.secrets is not None
    plan = run.plan
    try:
        redis_probe.probe(plan.services_address, plan.spec.redis.port, run.secrets.redis_password)
    except redis_probe.RedisUnavailable as exc:
        return None, str(exc)
    return True, ""


def _reload_changed(run: _Run, changed: list[RenderedFile]) -> bool:
    """Programs that kept running while their config changed pick the change up here.
    True if any was reloaded or restarted."""
    programs = {p.name: p for p in stack_programs(run.plan)}
    for name in sorted({f.program for f in changed if f.program}):
        if name in run.result.started:
            continue
        if name == "app":
            running = [p for p in programs_of(run.plan, "app") if p.name not in run.result.started]
            rolling_restart(run.plan, run.sup, running, run.progress)
            run.result.reloaded += [p.name for p in running]
            continue
        program = programs[name]
        signal_name = RELOAD_SIGNALS.get(program.component)
        if program.component == "haproxy":
            reload_haproxy(run.plan, run.sup, program)
        elif signal_name:
            run.sup.signal(program.process_name, signal_name)
        else:
            run.sup.stop(program.process_name)
            run.sup.start(program.process_name)
        run.result.reloaded.append(name)
    if run.result.reloaded:
        run.progress.done("reloaded " + ", ".join(run.result.reloaded))
    return bool(run.result.reloaded)


def _retry(action: Callable[[], object], error: type[Exception], attempts: int = 10) -> None:
    """Right after a promotion the leader may refuse a connection for a moment."""
    for attempt in range(attempts):
        try:
            action()
            return
        except error:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
