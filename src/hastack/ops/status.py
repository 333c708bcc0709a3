"""`hastack status`: every component and node, and one verdict. Returns data, never prints."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from hastack.ops.backup import BackupStatus, backup_status
from hastack.polling import iso_utc
from hastack.runtime.health import EXIT_CODES, Assessment, Health, assess, data_tier
from hastack.runtime.snapshot import StackSnapshot
from hastack.runtime.stack import Stack
from hastack.runtime.standby import standby_lag


@dataclass(frozen=True)
class StackStatus:
    snapshot: StackSnapshot
    assessment: Assessment
    decisions: tuple[dict[str, Any], ...] = ()
    """The watcher's last decisions."""
    backups: BackupStatus | None = None
    """None when backups are off (or not looked at)."""
    standby: dict[str, Any] | None = None
    """While a standby cluster: its primary and how far behind it is."""

    @property
    def health(self) -> Health:
        return self.assessment.health

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.health]

    def as_dict(self) -> dict[str, Any]:
        snap = self.snapshot
        plan = snap.plan
        return {
            "stack": plan.name,
            "taken_at": iso_utc(snap.taken_at),
            "health": self.health,
            "healthy": self.assessment.healthy,
            "problems": list(self.assessment.problems),
            "leader_key": snap.leader_key,
            "paused": snap.paused,
            "target": plan.spec.target,
            # In a container deployment the engine supervises: its tasks, listed as programs.
            "supervisord": "running" if snap.supervisor_running else "not running",
            "orphans": [asdict(o) for o in snap.orphans],
            "postgres": [asdict(m) for m in snap.members],
            "etcd": [
                {"name": e.name, "url": e.url, "healthy": e.healthy, "leader": e.leader}
                for e in snap.etcd
            ],
            "haproxy": {
                "error": snap.haproxy_error,
                "servers": [asdict(s) for s in snap.haproxy],
            },
            "pgbouncer": {
                "ok": snap.pgbouncer.ok,
                "error": snap.pgbouncer.error,
                "pools": snap.pgbouncer.detail.get("pools", []),
            },
            "redis": {"ok": snap.redis.ok, "error": snap.redis.error, **snap.redis.detail},
            "app": [
                {
                    "name": a.name,
                    "url": a.url,
                    "ready": a.ready,
                    "haproxy": a.haproxy,
                    "in_rotation": a.in_rotation,
                }
                for a in snap.app
            ],
            "leftovers": list(snap.leftovers),
            "monitoring": (
                None
                if snap.monitoring is None
                else {
                    "ok": snap.monitoring.ok,
                    "error": snap.monitoring.error,
                    "targets_down": snap.monitoring.detail.get("down", []),
                }
            ),
            "watcher": watcher_dict(snap),
            "fencing": list(self.decisions),
            "programs": [
                {"name": p.process_name, "state": p.state, "pid": p.pid, "uptime_s": p.uptime_s}
                for p in snap.programs
            ],
            "backups": self.backups.as_dict() if self.backups else None,
            "standby": self.standby,
        }


def watcher_dict(snap: StackSnapshot) -> dict[str, Any] | None:
    """The watcher's heartbeat and the holds on file, as `status --json` shows them."""
    view = snap.watcher
    if view is None:
        return None
    beat = view.heartbeat
    return {
        "last_poll_at": iso_utc(beat.last_poll_at) if beat else None,
        "last_poll_age_s": round(view.now - beat.last_poll_at, 1)
        if beat and beat.last_poll_at
        else None,
        "polls": beat.polls if beat else 0,
        "failed_polls": beat.failed_polls if beat else 0,
        "last_error": beat.last_error if beat else None,
        "last_error_at": iso_utc(beat.last_error_at) if beat else None,
        "supervisord": beat.supervisord if beat else None,
        "fenced_not_back": beat.fenced if beat else [],
        "waiting": beat.waiting if beat else [],
        "holds": [
            {
                "reason": h.hold.reason,
                "pid": h.hold.pid,
                "scope": list(h.hold.scope),
                "honoured": h.honoured,
                "sentence": h.sentence(view.now),
            }
            for h in view.holds
        ],
    }


def recent_decisions(stack: Stack, count: int = 5) -> list[dict[str, Any]]:
    """The watcher's last decisions (it logs one line per change)."""
    try:
        lines = stack.plan.paths.fencer_log.read_text().splitlines()[-count:]
    except OSError:
        return []
    decisions = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        decisions.append({k: record.get(k) for k in ("time", "action", "node", "sentence")})
    return decisions


def stack_status(stack: Stack) -> StackStatus:
    snap = stack.snapshot()
    assessment = assess(snap)
    backups = None
    tier = data_tier(snap)
    standby = None
    if tier.standby and tier.leader is not None and stack.plan.standby is not None:
        lag = standby_lag(stack, tier.leader)
        standby = {"primary": stack.plan.standby.primary_name, **lag.as_dict()}
        primary = stack.plan.standby.primary_name
        problem = None
        if not lag.primary_reachable:
            # Replication stopped: the copy ages. Promoting is the operator's decision.
            problem = (
                f"standby: the primary {primary} does not answer ({lag.error}); if its "
                "region is lost: `hastack promote-standby`"
            )
        elif lag.error:
            problem = f"standby: not replicating from {primary}: {lag.error}"
        if problem is not None:
            health: Health = "down" if assessment.health == "down" else "degraded"
            assessment = Assessment(health, (*assessment.problems, problem))
    elif snap.supervisor_running and stack.plan.backup_enabled:
        backups = backup_status(stack, data_tier(snap).leader)
        if backups is not None and backups.problems:
            # Backups never take the stack down, but a stack without them is degraded.
            health = "down" if assessment.health == "down" else "degraded"
            assessment = Assessment(health, assessment.problems + backups.problems)
    return StackStatus(snap, assessment, tuple(recent_decisions(stack)), backups, standby)


def settled_status(stack: Stack, wait_s: float = 15.0) -> StackStatus:
    """`status` at the end of `up`: when the only problems are Prometheus' failed scrapes,
    of programs `up` has just (re)started, give it a few more scrapes to see them answer
    before calling them down."""
    status = stack_status(stack)
    deadline = stack.clock.monotonic() + wait_s
    while (
        status.assessment.problems
        and all(p.startswith("monitoring: ") for p in status.assessment.problems)
        and stack.clock.monotonic() < deadline
    ):
        stack.clock.sleep(1.0)
        status = stack_status(stack)
    return status
