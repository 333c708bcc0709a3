"""App instances behind HAProxy: readiness, drain and rolling restarts through the runtime
API, server states kept across reloads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from hastack.render.haproxy import APP_BACKEND
from hastack.render.program import Program
from hastack.runtime.files import write_atomic
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.supervisor import Supervisor
from hastack.runtime.tls import TlsFiles, ensure_tls
from hastack.spec.plan import AppInstance, StackPlan
from hastack.tools import haproxy_api
from hastack.tools.http import client as http_client


class AppTierError(Exception):
    pass


def instance_ready(plan: StackPlan, instance: AppInstance, timeout_s: float = 1.0) -> bool:
    """The instance's own readiness endpoint answers 200 (ready or degraded)."""
    try:
        response = http_client().get(
            f"{instance.url}{plan.spec.app.health_path}", timeout=timeout_s
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def app_servers(plan: StackPlan) -> dict[str, haproxy_api.ServerState]:
    """HAProxy's view of each instance (empty when HAProxy does not answer)."""
    try:
        states = haproxy_api.server_states(plan.paths.haproxy_socket)
    except haproxy_api.HAProxyUnavailable:
        return {}
    return {s.server: s for s in states if s.backend == APP_BACKEND}


def _set_state(plan: StackPlan, name: str, state: str) -> None:
    haproxy_api.command(plan.paths.haproxy_socket, f"set server {APP_BACKEND}/{name} state {state}")


def save_server_state(plan: StackPlan) -> None:
    """Before a reload: the new HAProxy process starts from these states (a drained server
    stays drained instead of coming back up by surprise)."""
    try:
        text = haproxy_api.command(plan.paths.haproxy_socket, "show servers state")
    except haproxy_api.HAProxyUnavailable:
        return
    write_atomic(plan.paths.haproxy_server_state, text, plan.service_users["haproxy"], 0o600)


def reload_haproxy(plan: StackPlan, sup: Supervisor, haproxy: Program) -> None:
    """A seamless reload: the master starts new workers on the same listening sockets
    (master-worker mode), old workers finish their connections; server states carry over
    (a drained server stays drained in the new workers)."""
    save_server_state(plan)
    sup.signal(haproxy.process_name, "USR2")


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AppTierError(f"{what}: not within {timeout_s:.0f} s")


@dataclass
class InstanceRestart:
    name: str
    drained_s: float
    restarted_s: float
    back_in_rotation_s: float


@dataclass
class RollingResult:
    instances: list[InstanceRestart] = field(default_factory=list)
    elapsed_s: float = 0.0


def rolling_restart(
    plan: StackPlan,
    sup: Supervisor,
    programs: list[Program],
    progress: Progress | None = None,
    drain_timeout_s: float = 30.0,
) -> RollingResult:
    """One instance at a time: drain it in HAProxy (no new requests), wait until its
    sessions end, restart it (it finishes in-flight requests on SIGTERM), wait until it is
    ready, put it back, wait until HAProxy sees it up. Never two instances out at once."""
    progress = progress or NullProgress()
    by_name = {i.name: i for i in plan.app_instances}
    result = RollingResult()
    start = time.monotonic()
    for program in programs:
        result.instances.append(
            _restart_one(plan, sup, program, by_name[program.name], progress, drain_timeout_s)
        )
    result.elapsed_s = round(time.monotonic() - start, 2)
    return result


def _restart_one(
    plan: StackPlan,
    sup: Supervisor,
    program: Program,
    instance: AppInstance,
    progress: Progress,
    drain_timeout_s: float,
) -> InstanceRestart:
    name = program.name
    if len(plan.app_instances) > 1:
        # Draining the last instance in rotation would turn every request into a 503: wait
        # until another one is up (one that just failed a health check may be rising).
        _wait(
            lambda: _others_in_rotation(plan, name),
            30,
            f"another instance in rotation before draining {name} (see `hastack status`)",
        )
    progress.step(f"draining {name}")
    _set_state(plan, name, "drain")
    drained = _wait(lambda: _sessions(plan, name) == 0, drain_timeout_s, f"{name} drained")
    t = time.monotonic()
    sup.stop(program.process_name)
    sup.start(program.process_name, wait=False)
    _wait(lambda: instance_ready(plan, instance), 60, f"{name} ready")
    restarted = time.monotonic() - t
    _set_state(plan, name, "ready")
    back = _wait(lambda: _in_rotation(plan, name), 30, f"{name} back in rotation")
    progress.done(f"{name} restarted ({drained:.1f} s to drain)")
    return InstanceRestart(name, round(drained, 2), round(restarted, 2), round(back, 2))


def _in_rotation(plan: StackPlan, name: str) -> bool:
    server = app_servers(plan).get(name)
    return server is not None and server.up


def _others_in_rotation(plan: StackPlan, name: str) -> bool:
    return any(s.up for other, s in app_servers(plan).items() if other != name)


def _sessions(plan: StackPlan, name: str) -> int:
    server = app_servers(plan).get(name)
    return server.current_sessions if server is not None else 0


def prepare_http(plan: StackPlan) -> None:
    """TLS material and HAProxy's server-state file, before any config is checked (haproxy -c
    opens the certificate)."""
    paths = plan.paths
    tls = plan.spec.http.tls
    own = (tls.cert, tls.key) if tls.cert is not None and tls.key is not None else None
    ensure_tls(
        TlsFiles(paths.ca_cert, paths.ca_key, paths.haproxy_pem),
        plan.name,
        list(tls.hostnames),
        [plan.services_address, "127.0.0.1"],
        plan.service_users["haproxy"],
        own_cert=own,
    )
    if not paths.haproxy_server_state.exists():
        write_atomic(paths.haproxy_server_state, "", plan.service_users["haproxy"], 0o600)


def _wait_ready(plan: StackPlan, instance: AppInstance) -> None:
    _wait(lambda: instance_ready(plan, instance), 60, f"{instance.name} ready")


def drain_quietly(plan: StackPlan, name: str) -> None:
    """Drain a server that is going away (nothing to do if HAProxy does not know it)."""
    if name not in app_servers(plan):
        return
    _set_state(plan, name, "drain")
    # Past the deadline, stopping it still lets uvicorn finish what is in flight.
    with contextlib.suppress(AppTierError):
        _wait(lambda: _sessions(plan, name) == 0, 30, f"{name} drained")


def replace_rolling(
    plan: StackPlan, sup: Supervisor, programs: list[Program], progress: Progress
) -> None:
    """Changed instance definitions: like a rolling restart, but each supervisor group is
    re-added (supervisord applies a changed definition only to a re-added group)."""
    by_name = {i.name: i for i in plan.app_instances}
    for program in programs:
        name = program.name
        in_haproxy = name in app_servers(plan)
        if in_haproxy:
            drain_quietly(plan, name)
        sup.stop_group(program.group)
        sup.remove_group(program.group)
        sup.add_group(program.group)
        sup.start(program.process_name, wait=False)
        _wait_ready(plan, by_name[name])
        if in_haproxy:
            _set_state(plan, name, "ready")
        progress.done(f"{name} replaced")
