"""`hastack app token create`: demo credentials (a user, a site, an API token)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from hastack.app.tokens import hash_token, new_token
from hastack.errors import HastackError
from hastack.runtime.stack import Stack
from hastack.spec import roles


@dataclass(frozen=True)
class IssuedToken:
    user: str
    user_id: int
    sites: list[int]
    token: str
    """Shown once; only its hash is stored."""


def create_token(stack: Stack, user: str, site_names: list[str]) -> IssuedToken:
    """Create the user and sites if missing, allow the user those sites, issue a token."""
    leader = stack.leader()
    if leader is None:
        raise HastackError(f"stack {stack.name!r} has no leader", "hastack status")
    token = new_token()
    try:
        with stack.connect(leader) as conn:
            conn.execute(f"SET ROLE {roles.OWNER}")
            with conn.transaction():
                user_id = _upsert(conn, "app_users", user)
                sites = [_upsert(conn, "sites", name) for name in site_names]
                for site in sites:
                    conn.execute(
                        "INSERT INTO user_sites (user_id, site_id) VALUES (%s, %s) "
                        "ON CONFLICT DO NOTHING",
                        (user_id, site),
                    )
                conn.execute(
                    "INSERT INTO api_tokens (token_hash, user_id) VALUES (%s, %s)",
                    (hash_token(token), user_id),
                )
    except psycopg.errors.UndefinedTable:
        raise HastackError(
            "the app's tables do not exist: tokens are for the demo app (app.module), whose "
            "migrations `hastack up` applies",
            "hastack up",
        ) from None
    return IssuedToken(user=user, user_id=user_id, sites=sites, token=token)


def _upsert(conn: psycopg.Connection[tuple[object, ...]], table: str, name: str) -> int:
    # `table` is one of two fixed names, never user input.
    row = conn.execute(
        f"INSERT INTO {table} (name) VALUES (%s) ON CONFLICT (name) DO UPDATE "
        "SET name = EXCLUDED.name RETURNING id",
        (name,),
    ).fetchone()
    assert row is not None
    return int(str(row[0]))
