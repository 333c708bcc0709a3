"""System users: one per node and one per shared service, created with useradd."""

from __future__ import annotations

import pwd

from hastack.tools.base import run_checked

NOLOGIN = "/usr/sbin/nologin"


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def create_system_user(name: str, home: str, comment: str) -> None:
    """A system user with no login shell and no password; its home is not created here."""
    run_checked(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            home,
            "--shell",
            NOLOGIN,
            "--comment",
            comment,
            name,
        ],
        f"cannot create system user {name}",
        hint="useradd must be available and hastack must run as root",
    )


def delete_system_user(name: str) -> None:
    run_checked(["userdel", name], f"cannot delete system user {name}")
