"""What hastack created: the state directory marker and the system users it made.

`destroy` deletes only what this marker says hastack created; `up` refuses a state directory
it did not create or that belongs to another stack.
"""

from __future__ import annotations

import json
import os
import pwd
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hastack import __version__
from hastack.errors import HastackError
from hastack.runtime.files import ensure_dir, write_atomic
from hastack.spec.plan import StackPlan
from hastack.tools.system_users import create_system_user, delete_system_user, user_exists


class OwnershipError(HastackError):
    """A directory or user hastack would touch is not hastack's (or not this stack's)."""


@dataclass
class Marker:
    stack: str
    created_at: str
    hastack_version: str
    users: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    """What the stack was created with that an older hastack did not do (`etcd-tls`)."""

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2) + "\n"


def read_marker(path: Path) -> Marker | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OwnershipError(f"cannot read {path}: {exc}") from None
    return Marker(
        stack=str(data.get("stack", "")),
        created_at=str(data.get("created_at", "")),
        hastack_version=str(data.get("hastack_version", "")),
        users=[str(u) for u in data.get("users", [])],
        features=[str(f) for f in data.get("features", [])],
    )


ETCD_TLS = "etcd-tls"
FEATURES = [ETCD_TLS]


def require_features(plan: StackPlan, marker: Marker) -> None:
    """A stack made by an older hastack runs etcd over plain HTTP; its members know each
    other by http:// peer URLs, which cannot be switched to TLS one member at a time. Say so
    rather than start members that can no longer reach each other."""
    if ETCD_TLS in marker.features:
        return
    if any((n.paths.etcd_data / "member").exists() for n in plan.etcd_nodes):
        raise OwnershipError(
            f"stack {plan.name!r} was created by an older hastack: its etcd runs without TLS "
            "and client certificates, and a running etcd cluster cannot be switched over",
            "keep what you need (pg_dump through `hastack env` URLs), then "
            "`hastack destroy --yes` and `hastack up` to re-create it",
        )
    marker.features = sorted({*marker.features, *FEATURES})
    write_atomic(plan.paths.marker, marker.to_json(), "root", 0o644)


def claim_state_dir(plan: StackPlan) -> Marker:
    """Create the state directory (or confirm it is this stack's) and return its marker."""
    state = plan.paths.state_dir
    marker = read_marker(plan.paths.marker)
    if marker is not None:
        if marker.stack != plan.name:
            raise OwnershipError(
                f"{state} belongs to stack {marker.stack!r}, not {plan.name!r} "
                f"(see {plan.paths.marker}); set state_dir to another directory, or remove "
                f"that stack first with `hastack destroy --yes` and its own spec"
            )
        return marker
    if state.exists() and any(state.iterdir()):
        raise OwnershipError(
            f"{state} exists, is not empty and was not created by hastack; refusing to touch "
            "it. Set state_dir to a new directory."
        )
    state.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    ensure_dir(state, "root", 0o755)
    marker = Marker(
        stack=plan.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        hastack_version=__version__,
        features=list(FEATURES),
    )
    write_atomic(plan.paths.marker, marker.to_json(), "root", 0o644)
    return marker


def _comment(plan: StackPlan, unit: str) -> str:
    return f"hastack {plan.name} {unit}"


def ensure_users(plan: StackPlan, marker: Marker) -> list[str]:
    """Create the stack's system users that are missing; return the ones created now.

    A user with our name that hastack did not create for this stack is an error: fencing kills
    every process of a node's user, so the user must be this stack's alone."""
    units = {n.user: n.name for n in plan.nodes}
    units.update({user: svc for svc, user in plan.service_users.items()})
    created = []
    for user, unit in units.items():
        if user_exists(user):
            if user not in marker.users and pwd.getpwnam(user).pw_gecos != _comment(plan, unit):
                raise OwnershipError(
                    f"system user {user} exists but was not created by hastack for stack "
                    f"{plan.name!r}; remove it or rename the stack"
                )
        else:
            create_system_user(user, str(plan.paths.state_dir), _comment(plan, unit))
            created.append(user)
        if user not in marker.users:
            marker.users.append(user)
    if created:
        write_atomic(plan.paths.marker, marker.to_json(), "root", 0o644)
    return created


def remove_users(marker: Marker) -> list[str]:
    """Delete the system users the marker says hastack created; return those removed."""
    removed = []
    for user in marker.users:
        if user_exists(user):
            delete_system_user(user)
            removed.append(user)
    return removed


def running_as_root() -> bool:
    return os.geteuid() == 0
