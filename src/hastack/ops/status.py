"""`hastack status`: every component and node, and one verdict. Returns data, never prints."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from hastack.runtime import secret_store
from hastack.runtime.health import EXIT_CODES, Assessment, Health, assess
from hastack.runtime.snapshot import StackSnapshot, supervisor_for, take_snapshot
from hastack.spec.plan import StackPlan


@dataclass(frozen=True)
class StackStatus:
    snapshot: StackSnapshot
    assessment: Assessment

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
            "taken_at": datetime.fromtimestamp(snap.taken_at, UTC).isoformat(timespec="seconds"),
            "health": self.health,
            "healthy": self.assessment.healthy,
            "problems": list(self.assessment.problems),
            "leader_key": snap.leader_key,
            "paused": snap.paused,
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
            "fencing": recent_decisions(plan),
            "programs": [
                {"name": p.process_name, "state": p.state, "pid": p.pid, "uptime_s": p.uptime_s}
                for p in snap.programs
            ],
        }


def recent_decisions(plan: StackPlan, count: int = 5) -> list[dict[str, Any]]:
    """The fencing watcher's last decisions (it logs one line per change)."""
    try:
        lines = plan.paths.fencer_log.read_text().splitlines()[-count:]
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


def stack_status(plan: StackPlan) -> StackStatus:
    try:
        secrets = secret_store.load(plan.paths.secrets_dir)
    except OSError:
        secrets = None
    snap = take_snapshot(plan, supervisor_for(plan), secrets)
    return StackStatus(snapshot=snap, assessment=assess(snap))
