"""One look at every component of a running stack, gathered in parallel.

The snapshot is plain data; `health.assess` decides from it. `status`, the readiness waits of
`up` and the drills all read the same snapshot.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil

from hastack.render.haproxy import APP_BACKEND
from hastack.render.secrets import Secrets
from hastack.runtime.supervisor import ProcessInfo, Supervisor
from hastack.spec import roles
from hastack.spec.plan import Node, StackPlan
from hastack.tools import haproxy_api, iptables, pgbouncer_admin, redis_probe
from hastack.tools.etcd_api import EtcdClient, EtcdMemberStatus, EtcdUnavailable
from hastack.tools.patroni_api import PatroniClient, PatroniUnavailable


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


def _etcd(plan: StackPlan) -> tuple[EtcdMember, ...]:
    client = EtcdClient(plan.etcd_client_urls)
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


def _leader_key(plan: StackPlan) -> tuple[str | None, str | None]:
    try:
        return EtcdClient(plan.etcd_client_urls).get(plan.leader_key()), None
    except EtcdUnavailable as exc:
        return None, str(exc)


def _cluster_view(plan: StackPlan, leader: str | None) -> tuple[dict[str, dict[str, Any]], bool]:
    """(members, paused) as the leader's Patroni sees them; another node's view if the leader
    is mute. The leader's own view is preferred: a node just back from a partition can be
    stale."""
    names = [n.name for n in plan.postgres_nodes]
    order = ([leader] if leader in names else []) + [n for n in names if n != leader]
    for name in order:
        node = plan.node(name)
        client = PatroniClient(node.address, plan.spec.patroni.rest_port, timeout_s=1.0)
        try:
            view = client.cluster()
        except (PatroniUnavailable, ValueError):
            continue
        return {m["name"]: m for m in view.get("members", [])}, bool(view.get("pause"))
    return {}, False


def _members(plan: StackPlan, leader: str | None) -> tuple[tuple[PgMember, ...], bool]:
    view, paused = _cluster_view(plan, leader)
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


def _haproxy(plan: StackPlan) -> tuple[tuple[BackendServer, ...], str | None]:
    try:
        states = haproxy_api.server_states(plan.paths.haproxy_socket)
    except haproxy_api.HAProxyUnavailable as exc:
        return (), str(exc)
    return tuple(
        BackendServer(s.backend, s.server, s.status, s.up, s.current_sessions) for s in states
    ), None


def _pgbouncer(plan: StackPlan, secrets: Secrets | None) -> ServiceProbe:
    if secrets is None:
        return ServiceProbe(ok=False, error="secrets not readable")
    try:
        pools = pgbouncer_admin.show_pools(
            plan.services_address,
            plan.spec.pgbouncer.port,
            roles.PGBOUNCER_ADMIN,
            secrets.pgbouncer_admin_password,
        )
    except pgbouncer_admin.PgBouncerUnavailable as exc:
        return ServiceProbe(ok=False, error=str(exc))
    return ServiceProbe(ok=True, detail={"pools": pools})


def _redis(plan: StackPlan, secrets: Secrets | None) -> ServiceProbe:
    if secrets is None:
        return ServiceProbe(ok=False, error="secrets not readable")
    try:
        info = redis_probe.probe(
            plan.services_address, plan.spec.redis.port, secrets.redis_password
        )
    except redis_probe.RedisUnavailable as exc:
        return ServiceProbe(ok=False, error=str(exc))
    return ServiceProbe(ok=True, detail=info)


def _app(plan: StackPlan, servers: tuple[BackendServer, ...]) -> tuple[AppInstanceState, ...]:
    from hastack.runtime.apptier import instance_ready  # apptier builds on this module's peers

    status = {s.server: s.status for s in servers if s.backend == APP_BACKEND}
    with ThreadPoolExecutor(max_workers=max(1, len(plan.app_instances))) as pool:
        ready = list(pool.map(lambda i: instance_ready(plan, i, 0.5), plan.app_instances))
    return tuple(
        AppInstanceState(i.name, i.url, ok, status.get(i.name))
        for i, ok in zip(plan.app_instances, ready, strict=True)
    )


def drill_leftovers(plan: StackPlan) -> tuple[str, ...]:
    found = []
    if iptables.chain_exists(plan.iptables_chain):
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


def take_snapshot(
    plan: StackPlan, supervisor: Supervisor, secrets: Secrets | None
) -> StackSnapshot:
    running = supervisor.is_running()
    programs = tuple(supervisor.processes()) if running else ()
    with ThreadPoolExecutor(max_workers=6) as pool:
        etcd_f = pool.submit(_etcd, plan)
        leader_f = pool.submit(_leader_key, plan)
        haproxy_f = pool.submit(_haproxy, plan)
        pgb_f = pool.submit(_pgbouncer, plan, secrets)
        redis_f = pool.submit(_redis, plan, secrets)
        leftovers_f = pool.submit(drill_leftovers, plan)
        leader, leader_error = leader_f.result()
        members_f = pool.submit(_members, plan, leader)
        haproxy, haproxy_error = haproxy_f.result()
        app_f = pool.submit(_app, plan, haproxy)
        members, paused = members_f.result()
        return StackSnapshot(
            plan=plan,
            taken_at=time.time(),
            supervisor_running=running,
            programs=programs,
            etcd=etcd_f.result(),
            leader_key=leader,
            leader_key_error=leader_error,
            members=members,
            haproxy=haproxy,
            haproxy_error=haproxy_error,
            pgbouncer=pgb_f.result(),
            redis=redis_f.result(),
            leftovers=leftovers_f.result(),
            paused=paused,
            app=app_f.result(),
        )


def supervisor_for(plan: StackPlan) -> Supervisor:
    p = plan.paths
    return Supervisor(p.supervisor_config, p.supervisor_socket, p.supervisor_pidfile)
