"""Schema migrations: SQL files applied once each, in name order, as the owner role."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from hastack.render.secrets import Secrets
from hastack.runtime.database import superuser_connect
from hastack.spec import roles
from hastack.spec.plan import Node, StackPlan


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str


class MigrationError(Exception):
    pass


def apply_migrations(
    plan: StackPlan, leader: Node, secrets: Secrets, migrations: Sequence[Migration]
) -> list[str]:
    """Apply the ones not yet recorded in hastack_schema_migrations; each in its own
    transaction with its record. Returns the names applied now."""
    applied: list[str] = []
    db = plan.spec.postgres.database
    with superuser_connect(plan, leader, secrets, db) as conn:
        conn.execute(f"SET ROLE {roles.OWNER}")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS hastack_schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute("SELECT name FROM hastack_schema_migrations")}
        for migration in sorted(migrations, key=lambda m: m.name):
            if migration.name in done:
                continue
            try:
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO hastack_schema_migrations (name) VALUES (%s)",
                        (migration.name,),
                    )
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {migration.name} failed: {str(exc).strip()}"
                ) from None
            applied.append(migration.name)
    return applied
