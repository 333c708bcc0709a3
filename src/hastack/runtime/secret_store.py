"""Generated secrets, one 0600 file each under `<state>/secrets`, never printed here."""

from __future__ import annotations

import secrets as random_source
from pathlib import Path

from hastack.errors import HastackError
from hastack.runtime.files import ensure_dir, write_atomic
from hastack.spec import roles
from hastack.spec.secrets import INITIAL_VALUES, Secrets

SECRET_BYTES = 24
"""32 URL-safe characters: safe unquoted in YAML, INI, HAProxy and Redis configs and URLs."""


def new_value() -> str:
    return random_source.token_urlsafe(SECRET_BYTES)


def store(secrets_dir: Path, name: str, value: str) -> None:
    """Replace one secret, atomically (a reader sees the old value or the new one)."""
    write_atomic(secrets_dir / name, value + "\n", "root", 0o600)


def load_or_create(secrets_dir: Path) -> Secrets:
    """Read every secret, generating (and storing) any that is missing."""
    ensure_dir(secrets_dir, "root", 0o700)
    values = {}
    for name in Secrets.names():
        path = secrets_dir / name
        if path.exists():
            values[name] = path.read_text(encoding="utf-8").strip()
        else:
            values[name] = INITIAL_VALUES[name] if name in INITIAL_VALUES else new_value()
            store(secrets_dir, name, values[name])
    return _checked(Secrets(**values), secrets_dir)


def load(secrets_dir: Path, stack: str) -> Secrets:
    """Read every secret of a stack that was brought up before."""
    try:
        values = {
            name: (secrets_dir / name).read_text(encoding="utf-8").strip()
            for name in Secrets.names()
        }
    except FileNotFoundError:
        raise HastackError(
            f"stack {stack!r} has no secrets yet ({secrets_dir})", "run `hastack up` first"
        ) from None
    except PermissionError:
        raise HastackError(f"cannot read {secrets_dir}", "run hastack as root") from None
    return _checked(Secrets(**values), secrets_dir)


def _checked(secrets: Secrets, secrets_dir: Path) -> Secrets:
    if secrets.app_login not in roles.APP_LOGINS:
        raise HastackError(
            f"{secrets_dir / 'app_login'} names {secrets.app_login!r}, not one of "
            f"{', '.join(roles.APP_LOGINS)}",
            f"write {roles.APP_LOGINS[0]} into it (the login whose password is app_password)",
        )
    return secrets
