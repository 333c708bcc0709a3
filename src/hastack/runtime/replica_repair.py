"""The watcher's replica repairs: which replica to rebuild, and when. Pure.

A replica whose PostgreSQL cannot start (its data directory damaged: files lost, a page
unreadable, a broken control file) stays down for good: Patroni retries the start on every loop
and never rebuilds a directory that is not empty. A replica holds nothing the leader does not,
so the watcher asks Patroni to reinitialise it (`POST /reinitialize`: wipe, then a new replica
from the backup repository or the leader), like an operator would run `hastack reinit`:
- only a member that is not the leader, failing to start for `after_s`: from its first
  "start failed" until it runs (Patroni's retries show "starting" in between; a start that is
  merely slow is "starting" only, never this);
- only while another member leads and runs (the source of the new copy);
- never while the cluster is paused, hastack holds the watcher or that node's Patroni;
- at most once per `every_s` per node (a reinit that cannot help, e.g. a bad setting, is not
  repeated in a loop; the state stays visible in `status`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

FAILED_STATES = frozenset({"start failed", "restart failed"})
"""Patroni's member states for a PostgreSQL that it tried and failed to start."""
RETRYING_STATES = frozenset({"starting", "stopped", "crashed"})
"""States between two failed starts (Patroni retrying): they do not end a failing spell."""


@dataclass(frozen=True)
class RepairTimings:
    after_s: float = 30.0
    every_s: float = 300.0


@dataclass(frozen=True)
class Member:
    name: str
    role: str
    state: str
    timeline: int | None = None


@dataclass(frozen=True)
class RepairState:
    failing_since: Mapping[str, float] = field(default_factory=dict)
    last_reinit: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Repair:
    node: str
    sentence: str


def members_from_dcs(values: Mapping[str, str]) -> tuple[Member, ...]:
    """Patroni's member keys (`.../members/<name>` -> JSON) as members; unreadable ones
    skipped."""
    found = []
    for key, raw in sorted(values.items()):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict):
            name = key.rsplit("/", 1)[-1]
            timeline = data.get("timeline")
            found.append(
                Member(
                    name,
                    str(data.get("role", "")),
                    str(data.get("state", "")),
                    timeline if isinstance(timeline, int) else None,
                )
            )
    return tuple(found)


def plan_repairs(
    state: RepairState,
    t: float,
    members: tuple[Member, ...],
    leader: str | None,
    blocked: frozenset[str] = frozenset(),
    timings: RepairTimings = RepairTimings(),
) -> tuple[list[Repair], RepairState]:
    """The replicas to reinitialise now, and the state after. `blocked`: nodes not to touch
    (their Patroni held, or everything held or paused: pass every node)."""
    # Patroni tries again on every loop: a failed start shows as "starting" for a while, then
    # "start failed" again. The spell lasts until the member runs.
    failing = {
        m.name: state.failing_since.get(m.name, t)
        for m in members
        if m.name != leader
        and (
            m.state in FAILED_STATES
            or (m.state in RETRYING_STATES and m.name in state.failing_since)
        )
    }
    source = next(
        (m for m in members if m.name == leader and m.state in ("running", "streaming")), None
    )
    repairs = []
    last = dict(state.last_reinit)
    now_failed = {m.name for m in members if m.state in FAILED_STATES}
    for name, since in sorted(failing.items()):
        # Asked between two attempts (not during one, which Patroni would refuse as busy).
        if source is None or name in blocked or name not in now_failed:
            continue
        if t - since < timings.after_s:
            continue
        if name in last and t - last[name] < timings.every_s:
            continue
        repairs.append(
            Repair(
                name,
                f"{name}'s PostgreSQL has failed to start for {t - since:.0f} s: asking "
                f"Patroni to rebuild it from the repository or {source.name}",
            )
        )
        last[name] = t
    return repairs, replace(state, failing_since=failing, last_reinit=last)
