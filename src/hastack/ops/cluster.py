"""Planned and manual leadership changes, node re-initialisation, maintenance mode.

Each returns what happened with timings and waits until the cluster is healthy again. The
fencing watcher is held while hastack itself moves the leader.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from hastack.ops.env import load_secrets_or_explain
from hastack.ops.lifecycle import wait_healthy
from hastack.render.connection import connection_settings
from hastack.render.secrets import Secrets
from hastack.runtime.fencer import hold
from hastack.runtime.health import Assessment, data_tier
from hastack.runtime.lifecycle import current_leader
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.snapshot import supervisor_for, take_snapshot
from hastack.runtime.waits import WaitTimeout, wait_for
from hastack.spec import roles
from hastack.spec.plan import StackPlan
from hastack.tools import pgbouncer_admin
from hastack.tools.patroni_api import PatroniClient, PatroniUnavailable

PAUSE_TIMEOUT_S = 5.0


class ClusterOpError(Exception):
    pass


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


def _client(plan: StackPlan, node: str, secrets: Secrets, timeout_s: float = 2.0) -> PatroniClient:
    n = plan.node(node)
    return PatroniClient(
        n.address,
        plan.spec.patroni.rest_port,
        auth=(roles.PATRONI_REST, secrets.patroni_rest_password),
        timeout_s=timeout_s,
    )


def cluster_roles(plan: StackPlan, secrets: Secrets) -> tuple[str | None, str | None, list[str]]:
    """(leader, sync standby, streaming replicas) from one snapshot."""
    tier = data_tier(take_snapshot(plan, supervisor_for(plan), secrets))
    return tier.leader, tier.sync_standby, list(tier.streaming)


def writable_through_haproxy(plan: StackPlan, secrets: Secrets) -> str | None:
    """The node answering writes on HAProxy's read-write port, or None."""
    url = connection_settings(plan, secrets)["DATABASE_URL_DIRECT"]
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery(), inet_server_addr()::text").fetchone()
    except psycopg.Error:
        return None
    if row is None or row[0]:
        return None
    address = str(row[1]).split("/")[0]
    return next((n.name for n in plan.postgres_nodes if n.address == address), None)


def _pooler(plan: StackPlan, secrets: Secrets, sql: str) -> None:
    pgbouncer_admin.command(
        plan.services_address,
        plan.spec.pgbouncer.port,
        roles.PGBOUNCER_ADMIN,
        secrets.pgbouncer_admin_password,
        sql,
        PAUSE_TIMEOUT_S,
    )


def switchover(
    plan: StackPlan,
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
    secrets = load_secrets_or_explain(plan)
    leader, sync, streaming = cluster_roles(plan, secrets)
    if leader is None:
        raise ClusterOpError("the cluster has no leader; use `hastack failover --to NODE`")
    candidate = to or sync
    if candidate is None:
        raise ClusterOpError("no synchronous standby to switch over to; name one with --to")
    if candidate == leader:
        raise ClusterOpError(f"{candidate} is already the leader")
    if candidate not in streaming:
        raise ClusterOpError(f"{candidate} is not a streaming replica; see `hastack status`")
    if plan.spec.postgres.synchronous_mode and candidate != sync:
        raise ClusterOpError(
            f"in synchronous mode only the synchronous standby ({sync}) has every acknowledged "
            f"commit; switch over to it, not to {candidate}"
        )
    change = LeaderChange(action="switchover", old_leader=leader, new_leader=None)
    if at is not None:
        change.scheduled_at = at.isoformat()
        code, text = _client(plan, leader, secrets).switchover(leader, candidate, at.isoformat())
        if code != 202:
            raise ClusterOpError(f"Patroni refused the scheduled switchover ({code}): {text}")
        change.patroni_reply = text
        return change
    with hold(plan.paths.fencer_hold, timeout_s + 30, "hastack switchover"):
        _run_leader_change(
            plan, secrets, change, leader, candidate, pause_pooler, progress, timeout_s
        )
    change.assessment = wait_healthy(plan, timeout_s, progress)
    return change


def _run_leader_change(
    plan: StackPlan,
    secrets: Secrets,
    change: LeaderChange,
    leader: str,
    candidate: str,
    pause_pooler: bool,
    progress: Progress,
    timeout_s: float,
) -> None:
    t0 = time.monotonic()

    def step(message: str) -> None:
        change.steps.append((round(time.monotonic() - t0, 3), message))
        progress.step(message)

    if pause_pooler:
        try:
            _pooler(plan, secrets, f"PAUSE {plan.spec.postgres.database}")
            change.pooler_paused = True
            step("PgBouncer paused: its clients wait instead of failing")
        except (pgbouncer_admin.PgBouncerUnavailable, psycopg.Error) as exc:
            change.pooler_note = f"PgBouncer not paused ({exc}); clients may see errors"
            _resume_quietly(plan, secrets)
    reply: list[tuple[int, str]] = []
    client = _client(plan, leader, secrets, timeout_s=30)
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
        change.new_leader = wait_for(
            lambda: _writable(plan, secrets, candidate, reply),
            what=f"{candidate} taking writes through HAProxy",
            timeout_s=timeout_s,
            interval_s=0.05,
        )
        change.writable_after_s = round(time.monotonic() - t0, 3)
        step(f"{candidate} takes writes through HAProxy")
    except WaitTimeout as exc:
        raise ClusterOpError(str(exc)) from None
    finally:
        if change.pooler_paused:
            _resume_quietly(plan, secrets)
            step("PgBouncer resumed")
    request.join(timeout=30)
    change.patroni_reply = reply[0][1] if reply else "no reply"
    change.elapsed_s = round(time.monotonic() - t0, 3)


def _writable(
    plan: StackPlan, secrets: Secrets, candidate: str, reply: list[tuple[int, str]]
) -> tuple[str | None, str]:
    if reply and reply[0][0] >= 400:
        raise ClusterOpError(f"Patroni refused ({reply[0][0]}): {reply[0][1]}")
    node = writable_through_haproxy(plan, secrets)
    return (node if node == candidate else None), f"writable node: {node}"


def _resume_quietly(plan: StackPlan, secrets: Secrets) -> None:
    # RESUME of a database that is not paused is an error we can ignore.
    with contextlib.suppress(pgbouncer_admin.PgBouncerUnavailable, psycopg.Error):
        _pooler(plan, secrets, f"RESUME {plan.spec.postgres.database}")


def failover(
    plan: StackPlan, to: str, *, progress: Progress | None = None, timeout_s: float = 60
) -> LeaderChange:
    """Manual failover: promote `to` now, whatever the leader's state (for a cluster that
    cannot elect one itself). In synchronous mode a candidate other than the synchronous
    standby may miss acknowledged commits; the CLI asks for confirmation."""
    progress = progress or NullProgress()
    secrets = load_secrets_or_explain(plan)
    leader = current_leader(plan)
    if to == leader:
        raise ClusterOpError(f"{to} is already the leader")
    plan.node(to)
    change = LeaderChange(action="failover", old_leader=leader, new_leader=None)
    with hold(plan.paths.fencer_hold, timeout_s + 30, "hastack failover"):
        _run_leader_change(plan, secrets, change, leader or to, to, True, progress, timeout_s)
    change.assessment = wait_healthy(plan, timeout_s, progress)
    return change


def failover_risk(plan: StackPlan, to: str) -> str | None:
    """Why promoting `to` could lose acknowledged writes, or None."""
    secrets = load_secrets_or_explain(plan)
    leader, sync, _ = cluster_roles(plan, secrets)
    if plan.spec.postgres.synchronous_mode and sync is not None and to != sync:
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


def reinit(
    plan: StackPlan, node: str, *, progress: Progress | None = None, timeout_s: float = 300
) -> ReinitResult:
    """Wipe a replica's data directory and clone it again from the leader."""
    progress = progress or NullProgress()
    secrets = load_secrets_or_explain(plan)
    plan.node(node)
    if node == current_leader(plan):
        raise ClusterOpError(f"{node} is the leader; switch over first, then reinit it")
    t0 = time.monotonic()
    progress.step(f"reinitialising {node} from the leader")
    try:
        code, text = _client(plan, node, secrets).reinitialize()
    except PatroniUnavailable as exc:
        raise ClusterOpError(f"{node}'s Patroni does not answer: {exc}") from None
    if code != 200:
        raise ClusterOpError(f"Patroni refused to reinitialise {node} ({code}): {text}")
    assessment = wait_healthy(plan, timeout_s, progress)
    return ReinitResult(node=node, elapsed_s=round(time.monotonic() - t0, 2), assessment=assessment)


@dataclass
class PauseResult:
    paused: bool
    members: dict[str, Any]


def set_paused(
    plan: StackPlan, paused: bool, *, timeout_s: float = 30, progress: Progress | None = None
) -> PauseResult:
    """Maintenance mode: Patroni stops managing PostgreSQL (no failover, no restarts) until
    resumed. Waits until every member reports the new mode."""
    progress = progress or NullProgress()
    secrets = load_secrets_or_explain(plan)
    leader = current_leader(plan)
    if leader is None:
        raise ClusterOpError("the cluster has no leader to take the change")
    _client(plan, leader, secrets).patch_config({"pause": paused})
    progress.step("waiting for every member to " + ("pause" if paused else "resume"))

    def check() -> tuple[dict[str, Any] | None, str]:
        seen: dict[str, Any] = {}
        for n in plan.postgres_nodes:
            try:
                seen[n.name] = bool(_client(plan, n.name, secrets).member().get("pause", False))
            except (PatroniUnavailable, ValueError):
                seen[n.name] = "unreachable"
        done = all(v == paused or v == "unreachable" for v in seen.values())
        return (seen if done else None), str(seen)

    try:
        members = wait_for(check, what="members to follow", timeout_s=timeout_s, interval_s=0.3)
    except WaitTimeout as exc:
        raise ClusterOpError(str(exc)) from None
    return PauseResult(paused=paused, members=members)
