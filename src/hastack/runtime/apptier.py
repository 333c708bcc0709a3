"""App instances behind HAProxy: readiness, drain and rolling restarts through the runtime
API, server states kept across reloads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hastack.errors import HastackError
from hastack.polling import WaitTimeout
from hastack.render.program import Program
from hastack.runtime.containers import restart_service
from hastack.runtime.files import write_atomic
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.tls import TlsFiles, ensure_tls
from hastack.spec.names import APP_BACKEND
from hastack.spec.plan import AppInstance, StackPlan
from hastack.tools import app_probe
from hastack.tools.haproxy_api import HAProxyUnavailable, ServerState

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack


def instance_ready(stack: Stack, instance: AppInstance, timeout_s: float = 1.0) -> bool:
    """The instance's own readiness endpoint answers 200 (ready or degraded)."""
    return app_probe.ready(f"{instance.url}{stack.plan.spec.app.health_path}", timeout_s)


def app_servers(stack: Stack) -> dict[str, ServerState]:
    """HAProxy's view of each instance (empty when HAProxy does not answer)."""
    return stack.haproxy().servers_of(APP_BACKEND)


def set_app_state(stack: Stack, name: str, state: str) -> None:
    """`ready`, `drain` or `maint` for one instance in HAProxy's app backend."""
    stack.haproxy().set_state(APP_BACKEND, name, state)


def save_server_state(stack: Stack) -> None:
    """Before a reload: the new HAProxy process starts from these states (a drained server
    stays drained instead of coming back up by surprise)."""
    try:
        text = stack.haproxy().servers_state_text()
    except HAProxyUnavailable:
        return
    plan = stack.plan
    write_atomic(plan.paths.haproxy_server_state, text, plan.service_users["haproxy"], 0o600)


def reload_haproxy(stack: Stack) -> None:
    """A seamless reload: the master starts new workers on the same listening sockets
    (master-worker mode), old workers finish their connections; server states carry over
    (a drained server stays drained in the new workers)."""
    save_server_state(stack)
    stack.supervisor.signal(stack.programs("haproxy")[0].process_name, "USR2")


def _wait(stack: Stack, predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until `predicate` held."""
    start = stack.clock.monotonic()
    try:
        stack.until(predicate, what=what, timeout_s=timeout_s, interval_s=0.1)
    except WaitTimeout as exc:
        raise HastackError(exc.what, "hastack status; hastack logs app1") from None
    return stack.clock.monotonic() - start


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
    stack: Stack,
    programs: list[Program],
    progress: Progress | None = None,
    drain_timeout_s: float = 30.0,
) -> RollingResult:
    """One instance at a time: drain it in HAProxy (no new requests), wait until its
    sessions end, restart it (it finishes in-flight requests on SIGTERM), wait until it is
    ready, put it back, wait until HAProxy sees it up. Never two instances out at once."""
    progress = progress or NullProgress()
    by_name = {i.name: i for i in stack.plan.app_instances}
    result = RollingResult()
    start = stack.clock.monotonic()
    for program in programs:
        result.instances.append(
            _restart_one(stack, program, by_name[program.name], progress, drain_timeout_s)
        )
    result.elapsed_s = round(stack.clock.monotonic() - start, 2)
    return result


def _restart_one(
    stack: Stack,
    program: Program,
    instance: AppInstance,
    progress: Progress,
    drain_timeout_s: float,
) -> InstanceRestart:
    name = program.name
    sup = stack.supervisor
    if len(stack.plan.app_instances) > 1:
        # Draining the last instance in rotation would turn every request into a 503: wait
        # until another one is up (one that just failed a health check may be rising).
        _wait(
            stack,
            lambda: _others_in_rotation(stack, name),
            30,
            f"another instance in rotation before draining {name} (see `hastack status`)",
        )
    progress.step(f"draining {name}")
    set_app_state(stack, name, "drain")
    drained = _wait(stack, lambda: _sessions(stack, name) == 0, drain_timeout_s, f"{name} drained")
    t = stack.clock.monotonic()
    if stack.in_containers:
        if restart_service(stack.docker(), stack.plan, name):
            # The old task answers until the engine stops it: wait for that, then the new.
            _wait(stack, lambda: not instance_ready(stack, instance), 30, f"{name} stopped")
    else:
        sup.stop(program.process_name)
        sup.start(program.process_name, wait=False)
    _wait(stack, lambda: instance_ready(stack, instance), 60, f"{name} ready")
    restarted = stack.clock.monotonic() - t
    set_app_state(stack, name, "ready")
    back = _wait(stack, lambda: _in_rotation(stack, name), 30, f"{name} back in rotation")
    progress.done(f"{name} restarted ({drained:.1f} s to drain)")
    return InstanceRestart(name, round(drained, 2), round(restarted, 2), round(back, 2))


def _in_rotation(stack: Stack, name: str) -> bool:
    server = app_servers(stack).get(name)
    return server is not None and server.up


def _others_in_rotation(stack: Stack, name: str) -> bool:
    return any(s.up for other, s in app_servers(stack).items() if other != name)


def _sessions(stack: Stack, name: str) -> int:
    server = app_servers(stack).get(name)
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


def drain_quietly(stack: Stack, name: str) -> None:
    """Drain a server that is going away (nothing to do if HAProxy does not know it)."""
    if name not in app_servers(stack):
        return
    set_app_state(stack, name, "drain")
    # Past the deadline, stopping it still lets uvicorn finish what is in flight.
    with contextlib.suppress(HastackError):
        _wait(stack, lambda: _sessions(stack, name) == 0, 30, f"{name} drained")


def wait_ready(stack: Stack, instance: AppInstance) -> None:
    _wait(stack, lambda: instance_ready(stack, instance), 60, f"{instance.name} ready")


def replace_rolling(stack: Stack, programs: list[Program], progress: Progress) -> None:
    """Changed instance definitions: like a rolling restart, but each supervisor group is
    re-added (supervisord applies a changed definition only to a re-added group)."""
    by_name = {i.name: i for i in stack.plan.app_instances}
    sup = stack.supervisor
    for program in programs:
        name = program.name
        in_haproxy = name in app_servers(stack)
        if in_haproxy:
            drain_quietly(stack, name)
        sup.stop_group(program.group)
        sup.remove_group(program.group)
        sup.add_group(program.group)
        sup.start(program.process_name, wait=False)
        wait_ready(stack, by_name[name])
        if in_haproxy:
            set_app_state(stack, name, "ready")
        progress.done(f"{name} replaced")
