"""The fencing watcher's decisions about the leader: pure functions of one observation and
the last state, one sentence each.

Rules (each has a table test in tests/unit/test_fencing_decide.py):
- act only on the current leader, read linearizably from etcd; never while etcd cannot be
  read, the cluster is paused, or hastack holds the watcher (except to finish a fence already
  done: the key of a node confirmed dead is released whatever holds);
- never act when only Patroni's REST API is down (supervisord restarts Patroni in ~2 s while
  PostgreSQL keeps serving) or only PostgreSQL is down (Patroni restarts it in place);
- **dead**: Patroni and PostgreSQL both *refuse* connections for `detect_s` -> fence. Nothing
  listens: the processes are gone, and waiting longer only lengthens the outage;
- **unreachable**: both probes get no connection at all (no handshake, no route) at every
  poll for `detect_s` -> fence. A kernel completes TCP handshakes for a frozen or busy
  process, so this is mostly a host down or cut off (Patroni's TLS handshake timing out and
  a full accept queue count too: a leader frozen under load may be fenced before its lease
  is stale, which costs a failover, never a write). The watcher runs beside HAProxy and
  PgBouncer (the services host): a leader they cannot reach serves no client, whatever it
  still tells etcd, and the fence (on separate hosts, the operator's command powering the
  host off) comes before any release. The fast path of a host lost or cut off;
- **stalled**: both silent (a timeout is among the answers) for `detect_s` *and* the leader's
  lease in etcd not renewed for `stall_s` (two renewals missed in a row; Patroni renews every
  loop_wait) -> fence. A leader that is merely slow keeps renewing its lease and is never
  fenced: a timeout alone is not evidence of death;
- **demoted**: Patroni answers, reports that it no longer serves as primary, and its lease has
  not been renewed for `demoted_s` (it gave up leadership because it lost etcd, not because
  PostgreSQL is restarting in place) -> release its key, which nobody else could take until
  the TTL;
- **stale but running**: Patroni answers that it still runs as primary, yet its lease is older
  than loop_wait + 2 x retry_timeout (Patroni's own bound: it should have demoted itself by
  then) -> in synchronous mode, release its key, unless it reports failsafe mode active (then
  it reaches every member and keeps running by design). Its synchronous standby is the only
  node that may take over, and once that one is promoted the old primary can acknowledge no
  commit. An unknown role (a slow /patroni) is never taken for "not primary".

A fence stops Patroni and PostgreSQL of the node, and its etcd member only when that member
is unhealthy anyway (dead or frozen with the rest of the node): a healthy member is never
killed, so a fence never costs etcd quorum. The key is released only once the fence is
confirmed (no fenced process left).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hastack.spec.plan import WatcherTimings as Timings
from hastack.tools.http import ClientCert

Action = Literal["none", "suspect", "fence", "release", "readmit", "heal", "repair", "note"]
Probe = Literal["ok", "refused", "timeout", "unreachable"]
"""What one probe got: an answer, a refused connection (nothing listens: the process is gone),
no answer in time (frozen, cut off, or only slow), or no connection at all (no handshake,
no route: the host's kernel does not answer, so the host is down or cut off)."""

PRIMARY_ROLES = frozenset({"primary", "master", "standby_leader"})


@dataclass(frozen=True)
class WatchNode:
    name: str
    address: str
    user: str
    rest_port: int
    rest_ca: str
    """The CA Patroni's REST certificate is verified against (its API is HTTPS only)."""
    pg_port: int
    pgdata: str
    etcd_url: str | None
    etcd_program: str | None
    """Supervisor process name of the node's etcd member (`pg1:pg1-etcd`)."""
    patroni_program: str | None
    archive_push: tuple[str, ...] = ()
    """pgBackRest's command line as the node runs it, up to the command (empty without
    backups): the watcher asks it about a segment that blocks archiving."""
    host: str = ""
    """The host the node runs on (separate hosts only): what the fence command fences."""

    @property
    def rest_url(self) -> str:
        return f"https://{self.address}:{self.rest_port}"


@dataclass(frozen=True)
class WatcherConfig:
    stack: str
    leader_key: str
    config_key: str
    etcd_urls: tuple[str, ...]
    etcd_identity: ClientCert
    timings: Timings
    supervisor_socket: str
    supervisor_pidfile: str
    haproxy_socket: str
    haproxy_rw_backend: str
    haproxy_backends: tuple[str, ...]
    decision_log: str
    holds_dir: str
    heartbeat_file: str
    state_file: str
    recover_command: tuple[str, ...]
    """What the watcher runs when supervisord died (`hastack -c <applied spec> up`)."""
    recover_log: str
    identity: dict[str, Any]
    """How to recognise the stack's processes (runtime.orphans.Identity)."""
    nodes: tuple[WatchNode, ...]
    programs: tuple[dict[str, str], ...] = ()
    """Every supervised program: process_name, name, group, component, node."""
    secrets_dir: str = ""
    """Where the watcher reads the Patroni REST password (to reinitialise a broken replica)."""
    metrics_file: str = ""
    """Where it writes hastack's own metrics for Prometheus (empty: no monitoring)."""
    metrics_owner: str = "root"
    """Who may read that file (the monitoring user; 0600, in root's directory)."""
    decisions_mirror: str = ""
    """Where the latest decisions are copied for the dashboard (owned by metrics_owner)."""
    stanza: str = ""
    backup_state_file: str = ""
    """The backup scheduler's state (its newest backups); empty without backups."""
    certificates: dict[str, str] = field(default_factory=dict)
    """Certificate name -> file, whose expiry it exports."""
    fence_command: str = ""
    """On separate hosts: the operator's command that fences a node's host (run by /bin/sh
    with HASTACK_FENCE_NODE, HASTACK_FENCE_HOST and HASTACK_FENCE_ADDRESS; exit 0 once the
    host is off or cut). Empty: the watcher stops the node's processes itself."""
    unfence_command: str = ""
    """The command that brings a fenced host back (empty: it stays fenced)."""
    own_host: str = ""
    """The host the watcher itself runs on (the services host): a node there is fenced by
    stopping its processes, never by the command, which would power off the watcher, HAProxy
    and PgBouncer with it."""

    def fenced_by_command(self, node: WatchNode) -> bool:
        return bool(self.fence_command) and node.host != self.own_host

    manager: str = "supervisord"
    """Who runs the programs on the watcher's host: "supervisord" (one machine, the lab), or
    "systemd" (a host of the systemd render: `programs` then lists only the units of the
    nodes on this host, with their unit names, and there is no supervisord to recover)."""

    applied_spec: str = ""
    """The spec the stack last applied, handed to both commands as HASTACK_CONFIG (a
    command that is itself `hastack`, as the lab's are, finds its stack)."""

    @classmethod
    def from_json(cls, text: str) -> WatcherConfig:
        data: dict[str, Any] = json.loads(text)
        return cls(
            **{
                **data,
                "nodes": tuple(
                    WatchNode(**{**n, "archive_push": tuple(n.get("archive_push", ()))})
                    for n in data["nodes"]
                ),
                "timings": Timings(**data["timings"]),
                "etcd_urls": tuple(data["etcd_urls"]),
                "etcd_identity": ClientCert(**data["etcd_identity"]),
                "haproxy_backends": tuple(data["haproxy_backends"]),
                "recover_command": tuple(data["recover_command"]),
                "programs": tuple(data["programs"]),
            }
        )

    def node(self, name: str) -> WatchNode | None:
        return next((n for n in self.nodes if n.name == name), None)

    def etcd_urls_without(self, name: str) -> tuple[str, ...]:
        """etcd members not on node `name`: the fenced node's own member may be dead too."""
        node = self.node(name)
        dead = node.etcd_url if node else None
        return tuple(u for u in self.etcd_urls if u != dead) or self.etcd_urls


@dataclass(frozen=True)
class Observation:
    """What one poll saw of the leader. Probes are None when not taken."""

    t: float
    """Monotonic seconds."""
    leader: str | None
    etcd_ok: bool
    paused: bool = False
    held: bool = False
    """A hold covering everything is in force."""
    rest: Probe | None = None
    """Patroni's /liveness (answers without touching PostgreSQL)."""
    pg: Probe | None = None
    """A PostgreSQL protocol round trip (SSLRequest): a frozen postmaster cannot answer it."""
    role: str | None = None
    """The role /patroni reports (primary, replica, demoted...); None when it did not answer."""
    pg_state: str | None = None
    """The PostgreSQL state /patroni reports (running, stopping, stopped, starting...)."""
    failsafe_active: bool = False
    """/patroni says failsafe mode is active: the leader reaches every member without etcd."""
    lease_age_s: float | None = None
    """Seconds since the leader key's lease was last renewed (whole seconds; etcd re-grants
    every lease in full when its raft leader changes, so this can only under-state)."""

    @property
    def rest_ok(self) -> bool:
        return self.rest == "ok"

    @property
    def pg_ok(self) -> bool:
        return self.pg == "ok"


@dataclass(frozen=True)
class WatchState:
    leader: str | None = None
    down_since: float | None = None
    """When both probes of the leader started failing."""
    fenced: frozenset[str] = field(default_factory=frozenset)
    """Nodes fenced (confirmed) whose leader key may still need releasing."""
    unreachable_since: float | None = None
    """When both probes of the leader started getting no connection at all (a silence
    that began as timeouts does not count towards it)."""


@dataclass(frozen=True)
class Decision:
    action: Action
    node: str | None
    sentence: str


def decide(state: WatchState, obs: Observation, timings: Timings) -> tuple[Decision, WatchState]:
    """The next action about the leader and the state after it. Pure."""
    if not (obs.rest == "unreachable" and obs.pg == "unreachable"):
        state = replace(state, unreachable_since=None)
    if not obs.etcd_ok:
        return _etcd_unreadable(state, obs)
    if obs.leader is None:
        return (
            Decision("none", None, "no action: the cluster has no leader right now"),
            replace(state, leader=None, down_since=None, fenced=frozenset()),
        )
    leader = obs.leader
    if state.leader != leader:
        state = replace(state, down_since=None)  # another leader: its silence starts now
    fenced = frozenset(n for n in state.fenced if n == leader)
    if leader in fenced:
        sentence = f"{leader} is fenced but still holds the leader key: releasing it"
        return Decision("release", leader, sentence), replace(state, leader=leader, fenced=fenced)
    if obs.paused or obs.held:
        why = (
            "the cluster is paused (maintenance mode)"
            if obs.paused
            else "hastack is operating on the cluster"
        )
        return Decision("none", leader, f"no action: {why}"), replace(
            state, leader=leader, down_since=None, fenced=fenced
        )
    state = replace(state, leader=leader, fenced=fenced)
    if obs.rest_ok:
        return _answering(state, obs, leader, timings)
    if obs.pg_ok:
        sentence = (
            f"no action: only {leader}'s Patroni is silent; supervisord restarts it and "
            "PostgreSQL keeps serving"
        )
        return Decision("none", leader, sentence), replace(state, down_since=None)
    return _silent(state, obs, leader, timings)


def _answering(
    state: WatchState, obs: Observation, leader: str, timings: Timings
) -> tuple[Decision, WatchState]:
    """Patroni answers: release a key it can no longer renew, else leave it be."""
    state = replace(state, down_since=None)
    lease = obs.lease_age_s if obs.lease_age_s is not None else 0.0
    serving = _serving_as_primary(obs)
    if serving is False and lease >= timings.demoted_s:
        sentence = (
            f"{leader} no longer serves as primary (Patroni reports {obs.role}, "
            f"{obs.pg_state}) and has not renewed its key for {lease:.0f} s: releasing its "
            "leader key"
        )
        return Decision("release", leader, sentence), state
    if (
        serving is True
        and lease >= timings.stale_running_s
        and timings.release_running
        and not obs.failsafe_active
    ):
        sentence = (
            f"{leader} still runs as primary but has not renewed its key for {lease:.0f} s "
            f"(Patroni's own bound is {timings.stale_running_s - 1:.0f} s) and is not in "
            "failsafe mode: releasing its leader key"
        )
        return Decision("release", leader, sentence), state
    if obs.pg_ok:
        return Decision("none", leader, f"no action: {leader} is the leader and answers"), state
    if lease >= timings.demoted_s and obs.role is None:
        sentence = (
            f"no action: {leader}'s role is unknown (/patroni did not answer in time); a slow "
            "answer is not a demotion"
        )
        return Decision("none", leader, sentence), state
    sentence = f"no action: only {leader}'s PostgreSQL is silent; Patroni restarts it"
    return Decision("none", leader, sentence), state


def _silent(
    state: WatchState, obs: Observation, leader: str, timings: Timings
) -> tuple[Decision, WatchState]:
    """Neither Patroni nor PostgreSQL answers: dead (refused) or stalled (timeouts)."""
    since = state.down_since if state.down_since is not None else obs.t
    down_for = obs.t - since
    state = replace(state, down_since=since)
    dead = obs.rest == "refused" and obs.pg == "refused"
    lease = obs.lease_age_s
    if down_for >= timings.detect_s and dead:
        sentence = (
            f"{leader}'s Patroni and PostgreSQL both refuse connections for {down_for:.2f} s "
            f"(the processes are gone): fencing {leader}"
        )
        return Decision("fence", leader, sentence), state
    unreachable = obs.rest == "unreachable" and obs.pg == "unreachable"
    if unreachable and state.unreachable_since is None:
        state = replace(state, unreachable_since=obs.t)
    unreachable_for = (
        obs.t - state.unreachable_since if state.unreachable_since is not None else 0.0
    )
    if unreachable and unreachable_for >= timings.detect_s:
        sentence = (
            f"{leader}'s host has not answered a connection for {unreachable_for:.2f} s (down "
            f"or cut off; HAProxy cannot reach it either): fencing {leader}"
        )
        return Decision("fence", leader, sentence), state
    if down_for >= timings.detect_s and lease is not None and lease >= timings.stall_s:
        sentence = (
            f"{leader}'s Patroni and PostgreSQL silent for {down_for:.2f} s and its key not "
            f"renewed for {lease:.0f} s (stalled): fencing {leader}"
        )
        return Decision("fence", leader, sentence), state
    if dead or unreachable:
        waiting = f"fencing if that lasts {timings.detect_s:g} s"
    else:
        waiting = (
            f"fencing once its key has not been renewed for {timings.stall_s:g} s "
            f"(now {lease if lease is not None else '?'} s; a slow leader still renews it)"
        )
    sentence = f"{leader}'s Patroni and PostgreSQL are both silent; {waiting}"
    return Decision("suspect", leader, sentence), state


def _serving_as_primary(obs: Observation) -> bool | None:
    """Patroni says primary and PostgreSQL running: True; says anything else: False; did not
    say (no /patroni answer in time): None. A leader that lost the DCS demotes itself
    "offline": role still primary, PostgreSQL stopping (a fast shutdown that can hang for
    wal_sender_timeout while its walsenders wait for unreachable standbys; it accepts no new
    session and its waiting commits are cut, never acknowledged)."""
    if obs.role is None or obs.pg_state is None:
        return None
    return obs.role in PRIMARY_ROLES and obs.pg_state == "running"


def _etcd_unreadable(state: WatchState, obs: Observation) -> tuple[Decision, WatchState]:
    """Never act without a leader confirmed by etcd, but keep timing the last known leader's
    silence: losing the node that hosted etcd's raft leader costs an etcd election (~1 s),
    which must not be added to the detection time."""
    last = state.leader
    if last is not None and obs.rest not in (None, "ok") and obs.pg not in (None, "ok"):
        since = state.down_since if state.down_since is not None else obs.t
        sentence = (
            f"{last} (last known leader) is silent and etcd cannot be read; waiting for etcd "
            "to confirm the leader"
        )
        return Decision("suspect", last, sentence), replace(state, down_since=since)
    sentence = "no action: etcd cannot be read, so no lock can be released"
    return Decision("none", None, sentence), replace(state, down_since=None)


@dataclass(frozen=True)
class FenceScope:
    kill_etcd: bool
    sentence: str


def fence_scope(node: str, has_etcd: bool, etcd_healthy: Mapping[str, bool]) -> FenceScope:
    """What a fence of `node` stops: Patroni and PostgreSQL always; its etcd member only when
    that member is unhealthy anyway (killing a healthy member could cost quorum, and keeps
    nothing from writing: etcd holds no data of the node). `etcd_healthy`: node -> member
    healthy, for every node with a member."""
    if not has_etcd:
        return FenceScope(False, f"{node} runs no etcd member")
    if etcd_healthy.get(node, False):
        healthy = sum(1 for ok in etcd_healthy.values() if ok)
        return FenceScope(
            False,
            f"{node}'s etcd member is healthy ({healthy} of {len(etcd_healthy)} healthy): it stays",
        )
    return FenceScope(True, f"{node}'s etcd member is unhealthy too: the whole node goes")


def readmit(
    routed_away: frozenset[str], roles: dict[str, tuple[str | None, str | None]], leader: str | None
) -> list[str]:
    """Nodes taken out of HAProxy that may return: their Patroni reports PostgreSQL running,
    as a replica (or as the leader the cluster elected). `roles`: node -> (role, state)."""
    back = []
    for node in sorted(routed_away):
        role, state = roles.get(node, (None, None))
        if state == "running" and (role not in PRIMARY_ROLES or node == leader):
            back.append(node)
    return back


def after_fence(state: WatchState, node: str, confirmed: bool) -> WatchState:
    """A confirmed fence lets the key be released; an unconfirmed one leaves it to the TTL."""
    if confirmed:
        return replace(state, fenced=state.fenced | {node}, down_since=None)
    return replace(state, down_since=None)


def after_release(state: WatchState, node: str, released: bool) -> WatchState:
    if released:
        return replace(state, fenced=state.fenced - {node}, leader=None)
    return state
