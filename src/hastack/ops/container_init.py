"""What `hastack up` does beyond starting programs, run inside a container of a deployed stack.

On one machine `up` converges the roles and the database and makes the backup stanza and the
first backup from the host. In a container deployment the superuser's Unix socket and the
repository live in the containers' volumes, so `hastack deploy` runs this module there
(`docker exec -i ... python -m hastack.ops.container_init`): the image holds the same
hastack, and every path of the plan is the same inside, so the same functions run unchanged.

The request comes on stdin (never in argv or the environment: it holds the secrets), as JSON:
`{"spec": {...}, "secrets": {...}, "step": "database" | "backups", "leader": "pg1"}`. One line
of JSON goes to stdout: `{"ok": true, "said": [...]}` or `{"ok": false, "error": ..., "hint": ...}`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from hastack.demo.migrations import demo_migrations
from hastack.errors import HastackError
from hastack.ops.backup import ensure_first_backup, ensure_stanza
from hastack.runtime.database import ensure_database_when_ready
from hastack.runtime.migrations import apply_migrations
from hastack.runtime.stack import Stack
from hastack.spec.model import StackSpec
from hastack.spec.plan import derive_plan
from hastack.spec.secrets import Secrets

STEPS = ("database", "backups")


@dataclass
class Said:
    """Progress, collected for the caller (stdout carries only the result)."""

    lines: list[str] = field(default_factory=list)

    def step(self, message: str) -> None:
        self.lines.append(message)

    def done(self, message: str) -> None:
        self.lines.append(message)


def request(spec: StackSpec, secrets: Secrets, step: str, leader: str = "") -> str:
    """The stdin of one step (for `hastack deploy`)."""
    return json.dumps(
        {
            "spec": spec.model_dump(mode="json"),
            "secrets": {f: getattr(secrets, f) for f in Secrets.names()},
            "step": step,
            "leader": leader,
        }
    )


def run_step(payload: dict[str, Any]) -> list[str]:
    # Inside a container the plan's paths are real and the tools run here: to this process
    # the stack is a local one (its own target would send it back to the engine's CLI).
    spec = StackSpec.model_validate(payload["spec"]).model_copy(update={"target": "local"})
    secrets = Secrets(**payload["secrets"])
    stack = Stack(derive_plan(spec), secrets=secrets)
    said = Said()
    step = payload["step"]
    if step == "database":
        leader = str(payload["leader"])
        ensure_database_when_ready(stack, leader, timeout_s=60)
        said.done(f"roles and database {spec.postgres.database} on {leader}")
        if stack.plan.app_is_demo:
            applied = apply_migrations(stack, leader, demo_migrations())
            said.done(f"demo migrations applied: {', '.join(applied) or 'none new'}")
    elif step == "backups":
        info = ensure_stanza(stack, said)
        first = ensure_first_backup(stack, info, said)
        said.done(f"first full backup {first.label}" if first else "a full backup exists")
    else:
        raise HastackError(f"unknown step {step!r}", f"one of {', '.join(STEPS)}")
    return said.lines


def main() -> int:
    try:
        said = run_step(json.loads(sys.stdin.read()))
    except HastackError as exc:
        print(json.dumps({"ok": False, "error": exc.what, "hint": exc.hint}))
        return 1
    print(json.dumps({"ok": True, "said": said}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
