"""Schema migrations: SQL files applied once each, in name order, as the owner role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import psycopg

from hastack.errors import HastackError
from hastack.spec import roles

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack

Migration = tuple[str, str]
"""(name, SQL)."""


def apply_migrations(stack: Stack, leader: str, migrations: Sequence[Migration]) -> list[str]:
    """Apply the ones not yet recorded in hastack_schema_migrations; each in its own
    transaction with its record. Returns the names applied now."""
    applied: list[str] = []
    with stack.connect(leader) as conn:
        conn.execute(f"SET ROLE {roles.OWNER}")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS hastack_schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute("SELECT name FROM hastack_schema_migrations")}
        for name, text in sorted(migrations):
            if name in done:
                continue
            try:
                with conn.transaction():
                    conn.execute(text.encode())
                    conn.execute(
                        "INSERT INTO hastack_schema_migrations (name) VALUES (%s)", (name,)
                    )
            except psycopg.Error as exc:
                raise HastackError(
                    f"migration {name} failed on {leader}: {str(exc).strip()}",
                    "fix the migration's SQL, then run `hastack up` again",
                ) from None
            applied.append(name)
    return applied
