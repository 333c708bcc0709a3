"""The fencing watcher's decisions: pure functions of one observation and the last state.

Rules (from the prototype, where they gave 1.3-2.7 s failovers with no lost write):
- act only on the current leader, read linearizably from etcd;
- never act while etcd cannot be read, the cluster is paused, or hastack holds the watcher;
- never act when only Patroni's REST API is down (supervisord restarts Patroni in ~2 s while
  PostgreSQL keeps serving) or only PostgreSQL is down (Patroni restarts it in place);
- fence when both have failed for `detect_s`, then release the leader key, conditionally,
  only once the fence is confirmed (no process of the node's user left);
- release (without fencing) the key of a leader out of touch with etcd for `dcs_silence_s`
  (its `dcs_last_seen`, or its key's lease not renewed) that no longer serves as primary: cut
  off from the
  DCS it demotes itself after retry_timeout, but its key would live until the TTL (20 s) and
  nobody could take over;
- in synchronous mode, release it even while that leader still runs as primary: it cannot
  renew the lock, and once its synchronous standby (the only candidate Patroni allows) is
  promoted it cannot acknowledge a commit any more, so nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Action = Literal["none", "suspect", "fence", "release", "readmit"]

PRIMARY_ROLES = frozenset({"primary", "master", "standby_leader"})


@dataclass(frozen=True)
class FenceNode:
    name: str
    address: str
    user: str
    rest_port: int
    pg_port: int
    pgdata: str
    etcd_url: str | None


@dataclass(frozen=True)
class FenceConfig:
    stack: str
    leader_key: str
    config_key: str
    etcd_urls: tuple[str, ...]
    detect_s: float
    dcs_silence_s: float
    release_running_stale_leader: bool
    poll_interval_s: float
    probe_timeout_s: float
    supervisor_socket: str
    haproxy_socket: str
    haproxy_rw_backend: str
    haproxy_backends: tuple[str, ...]
    routed_away_file: str
    decision_log: str
    hold_file: str
    nodes: tuple[FenceNode, ...]

    @classmethod
    def from_json(cls, text: str) -> FenceConfig:
        data: dict[str, Any] = json.loads(text)
        nodes = tuple(FenceNode(**n) for n in data.pop("nodes"))
        data["etcd_urls"] = tuple(data["etcd_urls"])
        data["haproxy_backends"] = tuple(data["haproxy_backends"])
        return cls(nodes=nodes, **data)

    def node(self, name: str) -> FenceNode | None:
        return next((n for n in self.nodes if n.name == name), None)

    def etcd_urls_without(self, name: str) -> tuple[str, ...]:
        """etcd members not on node `name`: the fenced node's own member is dead too."""
        node = self.node(name)
        dead = node.etcd_url if node else None
        return tuple(u for u in self.etcd_urls if u != dead) or self.etcd_urls


@dataclass(frozen=True)
class Observation:
    """What one poll saw. `rest_ok`/`pg_ok` are about the leader; None when not probed."""

    t: float
    """Monotonic seconds."""
    leader: str | None
    etcd_ok: bool
    paused: bool = False
    held: bool = False
    rest_ok: bool | None = None
    pg_ok: bool | None = None
    role: str | None = None
    """The role the leader's Patroni reports (primary, replica, demoted...), when it answers."""
    pg_state: str | None = None
    """The PostgreSQL state it reports (running, stopping, stopped, starting...)."""
    dcs_age_s: float | None = None
    """How long the leader has been out of touch with etcd: the larger of its own
    `dcs_last_seen` age and the age of its leader key's lease (a healthy leader renews both
    every loop_wait)."""


@dataclass(frozen=True)
class WatchState:
    leader: str | None = None
    down_since: float | None = None
    """When both probes of the leader started failing."""
    fenced: frozenset[str] = field(default_factory=frozenset)
    """Nodes fenced (confirmed) whose leader key may still need releasing."""


@dataclass(frozen=True)
class Decision:
    action: Action
    node: str | None
    sentence: str


def decide(
    state: WatchState,
    obs: Observation,
    detect_s: float,
    dcs_silence_s: float = math.inf,
    release_running: bool = False,
) -> tuple[Decision, WatchState]:
    """The next action and the state after it. Pure."""
    if not obs.etcd_ok:
        return _etcd_unreadable(state, obs)
    if obs.leader is None:
        return (
            Decision("none", None, "no action: the cluster has no leader right now"),
            replace(state, leader=None, down_since=None, fenced=frozenset()),
        )
    leader = obs.leader
    fenced = frozenset(n for n in state.fenced if n == leader)
    if leader in fenced:
        return (
            Decision(
                "release",
                leader,
                f"{leader} is fenced but still holds the leader key: releasing it",
            ),
            replace(state, leader=leader, fenced=fenced),
        )
    if obs.paused or obs.held:
        why = (
            "the cluster is paused (maintenance mode)"
            if obs.paused
            else "hastack is operating on the cluster"
        )
        return Decision("none", leader, f"no action: {why}"), replace(
            state, leader=leader, down_since=None, fenced=fenced
        )
    dcs_age = obs.dcs_age_s if obs.dcs_age_s is not None else 0.0
    serving = _serving_as_primary(obs)
    if obs.rest_ok and dcs_age >= dcs_silence_s and (not serving or release_running):
        why = (
            f"no longer serves as primary (Patroni reports {obs.role}, {obs.pg_state})"
            if not serving
            else "still runs as primary"
        )
        return (
            Decision(
                "release",
                leader,
                f"{leader} out of touch with etcd for {dcs_age:.0f} s and {why}: "
                "releasing its leader key",
            ),
            replace(state, leader=leader, down_since=None, fenced=fenced),
        )
    if obs.rest_ok or obs.pg_ok:
        return Decision("none", leader, _alive_sentence(leader, obs)), replace(
            state, leader=leader, down_since=None, fenced=fenced
        )
    since = state.down_since if state.leader == leader and state.down_since is not None else obs.t
    down_for = obs.t - since
    new_state = replace(state, leader=leader, down_since=since, fenced=fenced)
    if down_for < detect_s:
        return (
            Decision(
                "suspect",
                leader,
                f"{leader}'s Patroni and PostgreSQL are both silent; fencing if that lasts "
                f"{detect_s:g} s",
            ),
            new_state,
        )
    return (
        Decision(
            "fence",
            leader,
            f"{leader}'s Patroni and PostgreSQL silent for {down_for:.2f} s: fencing {leader}",
        ),
        new_state,
    )


def _serving_as_primary(obs: Observation) -> bool:
    """Patroni says primary and PostgreSQL running. A leader that lost the DCS demotes itself
    "offline": role still primary, PostgreSQL stopping (a fast shutdown that can hang for
    wal_sender_timeout while its walsenders wait for unreachable standbys; it accepts no new
    session and its waiting commits are cut, never acknowledged)."""
    return obs.role in PRIMARY_ROLES and obs.pg_state == "running"


def _alive_sentence(leader: str, obs: Observation) -> str:
    if obs.rest_ok and obs.pg_ok:
        return f"no action: {leader} is the leader and answers"
    if obs.pg_ok:
        return (
            f"no action: only {leader}'s Patroni is silent; supervisord restarts it "
            "and PostgreSQL keeps serving"
        )
    return f"no action: only {leader}'s PostgreSQL is silent; Patroni restarts it"


def _etcd_unreadable(state: WatchState, obs: Observation) -> tuple[Decision, WatchState]:
    """Never act without a leader confirmed by etcd, but keep timing the last known leader's
    silence: losing the node that hosted etcd's raft leader costs an etcd election (~1 s),
    which must not be added to the detection time."""
    last = state.leader
    if last is not None and obs.rest_ok is False and obs.pg_ok is False:
        since = state.down_since if state.down_since is not None else obs.t
        return (
            Decision(
                "suspect",
                last,
                f"{last} (last known leader) is silent and etcd cannot be read; "
                "waiting for etcd to confirm the leader",
            ),
            replace(state, down_since=since),
        )
    return (
        Decision("none", None, "no action: etcd cannot be read, so no lock can be released"),
        replace(state, down_since=None),
    )


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
