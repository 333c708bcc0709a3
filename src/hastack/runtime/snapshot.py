"""One look at every component of a running stack, gathered in parallel.

The snapshot is plain data; `health.assess` decides from it. `status`, the readiness waits of
`up` and the drills all read the same snapshot.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from hastack.errors import Unavailable
from hastack.runtime import heartbeat, holds
from hastack.runtime.containers import process_infos
from hastack.runtime.orphans import StackProcess, find_orphans
from hastack.runtime.supervisor import ProcessInfo
from hastack.spec import roles
from hastack.spec.names import APP_BACKEND
from hastack.spec.plan import Node, StackPlan
from hastack.tools import app_probe
from hastack.tools.etcd_api import EtcdMemberStatus

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack
    from hastack.spec.secrets import Secrets


@dataclass(frozen=True)
class PgMember:
    name: str
    host: str
    port: int
    role: str
    """leader, sync_standby, replica, or unknown when Patroni does not answer."""
    state: str
    """Patroni's state: running, streaming, starting, stopped, ... or unreachable."""
    timeline: int | None
    lag_bytes: int | None
    pid: int | None
    """The postmaster's pid, from postmaster.pid (PostgreSQL is Patroni's detached child)."""


@dataclass(frozen=True)
class EtcdMember:
    name: str
    url: str
    healthy: bool
    leader: bool
    error: str | None = None


@dataclass(frozen=True)
class BackendServer:
    backend: str
    server: str
    status: str
    up: bool
    sessions: int


@dataclass(frozen=True)
class ServiceProbe:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class AppInstanceState:
    name: str
    url: str
    ready: bool
    """Its own readiness endpoint answers 200."""
    haproxy: str | None
    """Its status in HAProxy's app backend (UP, DOWN, DRAIN, MAINT...), None if unknown."""

    @property
    def in_rotation(self) -> bool:
        return self.haproxy is not None and (self.haproxy == "UP" or self.haproxy.startswith("UP "))


@dataclass(frozen=True)
class WatcherView:
    """The watcher as `status` sees it: its heartbeat and the holds on file."""

    heartbeat: heartbeat.Heartbeat | None
    holds: tuple[holds.HoldView, ...]
    now: float
    """Wall-clock seconds when read (heartbeat and holds carry wall-clock times)."""


@dataclass(frozen=True)
class StackSnapshot:
    plan: StackPlan
    taken_at: float
    """Wall-clock time (for display)."""
    supervisor_running: bool
    programs: tuple[ProcessInfo, ...]
    etcd: tuple[EtcdMember, ...]
    leader_key: str | None
    """Value of the Patroni leader key, read linearizably from etcd (None: no leader)."""
    leader_key_error: str | None
    members: tuple[PgMember, ...]
    haproxy: tuple[BackendServer, ...]
    haproxy_error: str | None
    pgbouncer: ServiceProbe
    redis: ServiceProbe
    leftovers: tuple[str, ...] = ()
    """What an interrupted drill left behind: network-cut rules, frozen processes."""
    paused: bool = False
    """Patroni's maintenance mode: no automatic failover until `hastack resume`."""
    app: tuple[AppInstanceState, ...] = ()
    orphans: tuple[StackProcess, ...] = ()
    """Stack processes no running supervisord owns (left by a supervisord that died)."""
    failsafe: tuple[str, ...] = ()
    """Members whose Patroni reports failsafe mode active: the leader ran without etcd
    recently, and for up to ttl afterwards the others still follow it even without a
    leader key (a failover would wait that long)."""
    watcher: WatcherView | None = None
    monitoring: ServiceProbe | None = None
    """Prometheus' targets that answered no scrape for DOWN_FOR (detail["down"]); None
    without monitoring, or while Prometheus is not running (its program says so)."""


TARGETS_DOWN_SCRAPES = 3
"""A target counts as down once this many scrapes in a row failed (and none succeeded over
the window): neither a fault the stack heals within seconds (a drill) nor a target's first
scrape while it starts makes the stack degraded."""


def targets_down_query(scrape_interval_s: int) -> str:
    """Targets whose scrapes all failed over the window (at least TARGETS_DOWN_SCRAPES of
    them), once Prometheus itself has run that long: right after its restart (`down` then
    `up`), what it recorded while the stack was stopping is not what the stack is now."""
    window = max(30, (TARGETS_DOWN_SCRAPES + 1) * scrape_interval_s)
    return (
        f"(max_over_time(up[{window}s]) == 0 "
        f"and count_over_time(up[{window}s]) >= {TARGETS_DOWN_SCRAPES}) "
        f'and on () (time() - process_start_time_seconds{{job="prometheus"}} > {window})'
    )


def _monitoring(stack: Stack, secrets: Secrets) -> ServiceProbe:
    """Prometheus' targets whose last scrapes all failed, each as `job name`."""
    plan = stack.plan
    try:
        answer = httpx.get(
            f"{plan.prometheus_url}/api/v1/query",
            params={"query": targets_down_query(plan.spec.monitoring.scrape_interval_s)},
            auth=(roles.MONITORING_WEB, secrets.monitoring_password),
            verify=str(plan.paths.ca_cert),
            timeout=2.0,
        )
        answer.raise_for_status()
        result = answer.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return ServiceProbe(ok=False, error=f"Prometheus does not answer: {type(exc).__name__}")
    down = sorted(
        " ".join(
            str(v)
            for v in (
                r["metric"].get("job"),
                r["metric"].get("pg_node")
                or r["metric"].get("member")
                or r["metric"].get("app")
                or r["metric"].get("instance"),
            )
            if v
        )
        for r in result
    )
    return ServiceProbe(ok=not down, detail={"down": down})


def postmaster_pid(node: Node) -> int | None:
    """The live postmaster pid of a node, or None when PostgreSQL is not running."""
    try:
        pid = int((node.paths.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    if pid <= 0:  # a negative pid marks a single-user backend (initdb, recovery tools)
        return None
    try:
        proc = psutil.Process(pid)
        if proc.username() != node.user:
            return None
    except psutil.Error:
        return None
    return pid


def _etcd(stack: Stack) -> tuple[EtcdMember, ...]:
    plan = stack.plan
    client = stack.etcd()
    with ThreadPoolExecutor(max_workers=len(plan.etcd_nodes) or 1) as pool:
        statuses: list[EtcdMemberStatus] = list(pool.map(client.member_status, client.urls))
    return tuple(
        EtcdMember(
            name=node.etcd_member or node.name,
            url=st.url,
            healthy=st.healthy,
            leader=st.is_leader,
            error=st.error,
        )
        for node, st in zip(plan.etcd_nodes, statuses, strict=True)
    )


def _leader_key(stack: Stack) -> tuple[str | None, str | None]:
    try:
        return stack.etcd().get(stack.plan.leader_key()), None
    except Unavailable as exc:
        return None, str(exc)


def _cluster_view(stack: Stack, leader: str | None) -> tuple[dict[str, dict[str, Any]], bool]:
    """(members, paused) as the leader's Patroni sees them; another node's view if the leader
    is mute. The leader's own view is preferred: a node just back from a partition can be
    stale."""
    names = [n.name for n in stack.plan.postgres_nodes]
    order = ([leader] if leader in names else []) + [n for n in names if n != leader]
    for name in order:
        try:
            view = stack.patroni(name, timeout_s=1.0).cluster()
        except (Unavailable, ValueError):
            continue
        return {m["name"]: m for m in view.get("members", [])}, bool(view.get("pause"))
    return {}, False


def _members(stack: Stack, leader: str | None) -> tuple[tuple[PgMember, ...], bool]:
    plan = stack.plan
    view, paused = _cluster_view(stack, leader)
    members = []
    for node in plan.postgres_nodes:
        m = view.get(node.name, {})
        lag = m.get("lag")
        members.append(
            PgMember(
                name=node.name,
                host=node.address,
                port=plan.spec.postgres.port,
                role=m.get("role", "unknown"),
                state=m.get("state", "unreachable"),
                timeline=m.get("timeline"),
                lag_bytes=lag if isinstance(lag, int) else None,
                pid=postmaster_pid(node),
            )
        )
    return tuple(members), paused


def _failsafe(stack: Stack) -> tuple[str, ...]:
    names = [n.name for n in stack.plan.postgres_nodes]

    def active(name: str) -> bool:
        try:
            return bool(stack.patroni(name, timeout_s=1.0).member().get("failsafe_mode_is_active"))
        except (Unavailable, ValueError):
            return False

    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        flags = list(pool.map(active, names))
    return tuple(n for n, on in zip(names, flags, strict=True) if on)


def _haproxy(stack: Stack) -> tuple[tuple[BackendServer, ...], str | None]:
    try:
        states = stack.haproxy().server_states()
    except Unavailable as exc:
        return (), str(exc)
    return tuple(
        BackendServer(s.backend, s.server, s.status, s.up, s.current_sessions) for s in states
    ), None


def _probe(call: Any) -> ServiceProbe:
    """A service probe that needs the secrets: an error names why it could not answer."""
    try:
        return ServiceProbe(ok=True, detail=call())
    except Unavailable as exc:
        return ServiceProbe(ok=False, error=exc.what)
    except Exception as exc:
        return ServiceProbe(ok=False, error=str(exc).splitlines()[0])


def _app(stack: Stack, servers: tuple[BackendServer, ...]) -> tuple[AppInstanceState, ...]:
    plan = stack.plan
    status = {s.server: s.status for s in servers if s.backend == APP_BACKEND}
    path = plan.spec.app.health_path
    with ThreadPoolExecutor(max_workers=max(1, len(plan.app_instances))) as pool:
        ready = list(pool.map(lambda i: app_probe.ready(i.url + path, 0.5), plan.app_instances))
    return tuple(
        AppInstanceState(i.name, i.url, ok, status.get(i.name))
        for i, ok in zip(plan.app_instances, ready, strict=True)
    )


def drill_leftovers(stack: Stack) -> tuple[str, ...]:
    plan = stack.plan
    found = []
    if stack.netcut().exists():
        found.append(f"iptables chain {plan.iptables_chain} (network cut)")
    users = set(plan.all_users)
    frozen = [
        p.pid
        for p in psutil.process_iter(["username", "status"])
        if p.info["username"] in users and p.info["status"] == psutil.STATUS_STOPPED
    ]
    if frozen:
        found.append(f"{len(frozen)} frozen processes (SIGSTOP)")
    return tuple(found)


def _watcher(stack: Stack) -> WatcherView | None:
    if not stack.plan.spec.fencing.enabled:
        return None
    paths = stack.plan.paths
    now = stack.clock.wall()
    return WatcherView(
        heartbeat=heartbeat.read(paths.watcher_heartbeat),
        holds=tuple(holds.read(paths.holds_dir, now)),
        now=now,
    )


def take_snapshot(stack: Stack, services: bool = True) -> StackSnapshot:
    """Everything `status` shows. `services`: also probe PgBouncer and Redis (they need the
    secrets; `up` skips them until it has started them)."""
    sup = stack.supervisor
    if stack.in_containers:
        # The engine supervises: its tasks stand for supervisord's programs.
        programs = tuple(process_infos(stack.docker(), stack.plan))
        running = any(p.state != "STOPPED" for p in programs)
    else:
        running = sup.is_running()
        programs = tuple(sup.processes()) if running else ()
    wall = stack.clock.wall
    secrets = stack.secrets_or_none() if services else None
    skipped = ServiceProbe(ok=False, error="not probed")
    with ThreadPoolExecutor(max_workers=10) as pool:
        etcd_f = pool.submit(_etcd, stack)
        leader_f = pool.submit(_leader_key, stack)
        haproxy_f = pool.submit(_haproxy, stack)
        pgb_f = redis_f = None
        if secrets is not None:
            pgb_f = pool.submit(_probe, lambda: {"pools": stack.pgbouncer().show_pools()})
            redis_f = pool.submit(_probe, stack.redis().probe)
        monitoring_f = None
        prometheus_runs = any(p.name == "prometheus" and p.running for p in programs)
        if secrets is not None and stack.plan.monitoring_enabled and prometheus_runs:
            monitoring_f = pool.submit(_monitoring, stack, secrets)
        leftovers_f = pool.submit(drill_leftovers, stack)
        orphans_f = pool.submit(
            lambda: (
                []
                if stack.in_containers
                else find_orphans(stack.identity, sup.pid() if running else None)
            )
        )
        leader, leader_error = leader_f.result()
        members_f = pool.submit(_members, stack, leader)
        failsafe_f = pool.submit(_failsafe, stack)
        haproxy, haproxy_error = haproxy_f.result()
        app_f = pool.submit(_app, stack, haproxy)
        members, paused = members_f.result()
        return StackSnapshot(
            plan=stack.plan,
            taken_at=wall(),
            supervisor_running=running,
            programs=programs,
            etcd=etcd_f.result(),
            leader_key=leader,
            leader_key_error=leader_error,
            members=members,
            haproxy=haproxy,
            haproxy_error=haproxy_error,
            pgbouncer=pgb_f.result() if pgb_f else skipped,
            redis=redis_f.result() if redis_f else skipped,
            leftovers=leftovers_f.result(),
            paused=paused,
            failsafe=failsafe_f.result(),
            app=app_f.result(),
            orphans=tuple(orphans_f.result()),
            watcher=_watcher(stack),
            monitoring=monitoring_f.result() if monitoring_f else None,
        )
