"""Planned and manual leadership changes, node re-initialisation, maintenance mode.

Each returns what happened with timings and waits until the cluster is healthy again. The
fencing watcher is held while hastack itself moves the leader.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from hastack.errors import HastackError, Unavailable
from hastack.ops.lifecycle import wait_healthy
from hastack.runtime.health import Assessment, data_tier
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack

PAUSE_TIMEOUT_S = 5.0


@dataclass
class LeaderChange:
    action: str
    old_leader: str | None
    new_leader: str | None
    scheduled_at: str | None = None
    pooler_paused: bool = False
    pooler_note: str = ""
    writable_after_s: float | None = None
    """From the request until the new leader accepts writes through HAProxy."""
    elapsed_s: float = 0.0
    patroni_reply: str = ""
    assessment: Assessment | None = None
    steps: list[tuple[float, str]] = field(default_factory=list)


def cluster_roles(stack: Stack) -> tuple[str | None, str | None, list[str]]:
    """(leader, sync standby, streaming replicas) from one snapshot."""
    tier = data_tier(stack.snapshot())
    return tier.leader, tier.sync_standby, list(tier.streaming)


def writable_through_haproxy(stack: Stack) -> str | None:
    """The node answering writes on HAProxy's read-write port, or None."""
    plan = stack.plan
    url = stack.urls()["DATABASE_URL_DIRECT"]
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery(), inet_server_addr()::text").fetchone()
    except psycopg.Error:
        return None
    if row is None or row[0]:
        return None
    address = str(row[1]).split("/")[0]
    return next((n.name for n in plan.postgres_nodes if n.address == address), None)


def _pooler(stack: Stack, sql: str) -> None:
    stack.pgbouncer().command(sql, PAUSE_TIMEOUT_S)


def switchover(
    stack: Stack,
    to: str | None = None,
    at: datetime | None = None,
    *,
    pause_pooler: bool = True,
    progress: Progress | None = None,
    timeout_s: float = 60,
) -> LeaderChange:
    """Planned switchover to `to` (default: the synchronous standby, the only one that has
    every acknowledged commit). PgBouncer is paused around it, so its clients wait instead
    of failing; it is resumed as soon as the new leader takes writes through HAProxy."""
    progress = progress or NullProgress()
    plan = stack.plan
    leader, sync, streaming = cluster_roles(stack)
    if leader is None:
        raise HastackError("the cluster has no leader", "hastack failover --to NODE")
    candidate = to or sync
    if candidate is None:
        raise HastackError("no synchronous standby to switch over to", "name one with --to")
    if candidate == leader:
        raise HastackError(f"{candidate} is already the leader")
    if candidate not in streaming:
        raise HastackError(f"{candidate} is not a streaming replica", "hastack status")
    if plan.spec.postgres.synchronous_mode and candidate != sync:
        raise HastackError(
            f"in synchronous mode only the synchronous standby ({sync}) has every acknowledged "
            f"commit; switch over to it, not to {candidate}",
            f"hastack switchover --to {sync}",
        )
    change = LeaderChange(action="switchover", old_leader=leader, new_leader=None)
    if at is not None:
        change.scheduled_at = at.isoformat()
        code, text = stack.patroni(leader).switchover(leader, candidate, at.isoformat())
        if code != 202:
            raise HastackError(f"Patroni refused the scheduled switchover ({code}): {text}")
        change.patroni_reply = text
        return change
    with stack.hold(timeout_s + 30, "hastack switchover"):
        _run_leader_change(stack, change, leader, candidate, pause_pooler, progress, timeout_s)
    change.assessment = wait_healthy(stack, timeout_s, progress)
    return change


def _run_leader_change(
    stack: Stack,
    change: LeaderChange,
    leader: str,
    candidate: str,
    pause_pooler: bool,
    progress: Progress,
    timeout_s: float,
) -> None:
    clock = stack.clock
    t0 = clock.monotonic()
    db = stack.plan.spec.postgres.database

    def step(message: str) -> None:
        change.steps.append((round(clock.monotonic() - t0, 3), message))
        progress.step(message)

    if pause_pooler:
        try:
            _pooler(stack, f"PAUSE {db}")
            change.pooler_paused = True
            step("PgBouncer paused: its clients wait instead of failing")
        except (Unavailable, psycopg.Error) as exc:
            change.pooler_note = f"PgBouncer not paused ({exc}); clients may see errors"
            _resume_quietly(stack)
    reply: list[tuple[int, str]] = []
    client = stack.patroni(leader, timeout_s=30)
    request = threading.Thread(
        target=lambda: reply.append(
            client.switchover(leader, candidate)
            if change.action == "switchover"
            else client.failover(candidate)
        ),
        daemon=True,
    )
    step(f"{change.action} {leader} -> {candidate} requested")
    request.start()
    try:
        change.new_leader = stack.wait(
            lambda: _writable(stack, candidate, reply),
            what=f"{candidate} taking writes through HAProxy",
            timeout_s=timeout_s,
            interval_s=0.05,
            hint="hastack status; hastack logs " + candidate,
        )
        change.writable_after_s = round(clock.monotonic() - t0, 3)
        step(f"{candidate} takes writes through HAProxy")
    finally:
        if change.pooler_paused:
            _resume_quietly(stack)
            step("PgBouncer resumed")
    request.join(timeout=30)
    change.patroni_reply = reply[0][1] if reply else "no reply"
    change.elapsed_s = round(clock.monotonic() - t0, 3)


def _writable(stack: Stack, candidate: str, reply: list[tuple[int, str]]) -> tuple[str | None, str]:
    if reply and reply[0][0] >= 400:
        raise HastackError(f"Patroni refused ({reply[0][0]}): {reply[0][1]}")
    node = writable_through_haproxy(stack)
    return (node if node == candidate else None), f"writable node: {node}"


def _resume_quietly(stack: Stack) -> None:
    # RESUME of a database that is not paused is an error we can ignore.
    with contextlib.suppress(Unavailable, psycopg.Error):
        _pooler(stack, f"RESUME {stack.plan.spec.postgres.database}")


def failover(
    stack: Stack, to: str, *, progress: Progress | None = None, timeout_s: float = 60
) -> LeaderChange:
    """Manual failover: promote `to` now, whatever the leader's state (for a cluster that
    cannot elect one itself). In synchronous mode a candidate other than the synchronous
    standby may miss acknowledged commits; the CLI asks for confirmation."""
    progress = progress or NullProgress()
    leader = stack.leader()
    if to == leader:
        raise HastackError(f"{to} is already the leader")
    _known_node(stack, to)
    change = LeaderChange(action="failover", old_leader=leader, new_leader=None)
    with stack.hold(timeout_s + 30, "hastack failover"):
        _run_leader_change(stack, change, leader or to, to, True, progress, timeout_s)
    change.assessment = wait_healthy(stack, timeout_s, progress)
    return change


def _known_node(stack: Stack, name: str) -> None:
    try:
        stack.plan.node(name)
    except KeyError as exc:
        raise HastackError(str(exc.args[0]), "hastack status names the nodes") from None


def failover_risk(stack: Stack, to: str) -> str | None:
    """Why promoting `to` could lose acknowledged writes, or None."""
    leader, sync, _ = cluster_roles(stack)
    if stack.plan.spec.postgres.synchronous_mode and sync is not None and to != sync:
        return (
            f"{to} is not the synchronous standby ({sync}): commits acknowledged since it last "
            "caught up would be lost"
        )
    if leader is not None:
        return f"{leader} is a healthy leader: prefer `hastack switchover --to {to}`"
    return None


@dataclass
class ReinitResult:
    node: str
    elapsed_s: float
    assessment: Assessment


def _postmaster_pid(stack: Stack, node: str) -> int | None:
    return next((m.pid for m in stack.snapshot(services=False).members if m.name == node), None)


def _restarted(stack: Stack, node: str, before: int | None) -> tuple[bool | None, str]:
    pid = _postmaster_pid(stack, node)
    if pid is not None and pid != before:
        return True, ""
    return None, f"postmaster pid {pid} (was {before})"


def reinit(
    stack: Stack, node: str, *, progress: Progress | None = None, timeout_s: float = 300
) -> ReinitResult:
    """Wipe a replica's data directory and clone it again from the leader."""
    progress = progress or NullProgress()
    _known_node(stack, node)
    if node == stack.leader():
        raise HastackError(f"{node} is the leader", f"switch over first, then reinit {node}")
    t0 = stack.clock.monotonic()
    before = _postmaster_pid(stack, node)
    progress.step(f"reinitialising {node} (from the backup repository, else the leader)")
    try:
        code, text = stack.patroni(node).reinitialize()
    except Unavailable as exc:
        raise HastackError(
            f"{node}'s Patroni does not answer: {exc.what}", f"hastack logs {node}"
        ) from None
    if code != 200:
        raise HastackError(f"Patroni refused to reinitialise {node} ({code}): {text}")
    # Patroni answers at once and rebuilds in the background: until PostgreSQL runs from the
    # new data directory (a new postmaster), the old one still looks healthy.
    progress.step(f"waiting for {node}'s new data directory to run")
    stack.wait(
        lambda: _restarted(stack, node, before),
        what=f"{node} running from its new data directory",
        timeout_s=timeout_s,
        interval_s=0.2,
        hint=f"hastack logs {node} patroni",
    )
    assessment = wait_healthy(stack, timeout_s, progress)
    elapsed = round(stack.clock.monotonic() - t0, 2)
    return ReinitResult(node=node, elapsed_s=elapsed, assessment=assessment)


@dataclass
class PauseResult:
    paused: bool
    members: dict[str, Any]


def set_paused(
    stack: Stack, paused: bool, *, timeout_s: float = 30, progress: Progress | None = None
) -> PauseResult:
    """Maintenance mode: Patroni stops managing PostgreSQL (no failover, no restarts) until
    resumed. Waits until every member reports the new mode."""
    progress = progress or NullProgress()
    leader = stack.leader()
    if leader is None:
        raise HastackError("the cluster has no leader to take the change", "hastack status")
    stack.patroni(leader).patch_config({"pause": paused})
    progress.step("waiting for every member to " + ("pause" if paused else "resume"))

    def check() -> tuple[dict[str, Any] | None, str]:
        seen: dict[str, Any] = {}
        for n in stack.plan.postgres_nodes:
            try:
                seen[n.name] = bool(stack.patroni(n.name).member().get("pause", False))
            except (Unavailable, ValueError):
                seen[n.name] = "unreachable"
        done = all(v == paused or v == "unreachable" for v in seen.values())
        return (seen if done else None), str(seen)

    members = stack.wait(check, what="members to follow", timeout_s=timeout_s, interval_s=0.3)
    return PauseResult(paused=paused, members=members)
