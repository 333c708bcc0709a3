"""`hastack app token create | list | revoke`: demo credentials (a user, a site, an API token
that expires), and their end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg

from hastack.app.tokens import hash_token, new_token
from hastack.errors import HastackError
from hastack.runtime.stack import Stack
from hastack.spec import roles

DEFAULT_DAYS = 90


@dataclass(frozen=True)
class IssuedToken:
    user: str
    user_id: int
    sites: list[int]
    token: str
    """Shown once; only its hash is stored."""
    token_id: int
    expires_at: str


@dataclass(frozen=True)
class TokenInfo:
    token_id: int
    user: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    state: str
    """active, expired or revoked (by the database's clock)."""


@contextlib.contextmanager
def load_tokens(stack: Stack, prefix: str, count: int, site: str) -> Iterator[list[IssuedToken]]:
    """`count` users (`prefix`-0..), one token each, all allowed `site`: load spread over
    them measures the app, not the per-user rate-limit tier. Revoked afterwards (load
    credentials do not outlive the load)."""
    tokens = [create_token(stack, f"{prefix}-{n}", [site], days=1) for n in range(count)]
    try:
        yield tokens
    finally:
        for token in tokens:
            with contextlib.suppress(HastackError, psycopg.Error):
                revoke_tokens(stack, token_id=token.token_id)


def create_token(
    stack: Stack, user: str, site_names: list[str], days: int = DEFAULT_DAYS
) -> IssuedToken:
    """Create the user and sites if missing, allow the user those sites, issue a token that
    expires after `days`."""
    if not 0 < days <= 3650:
        raise HastackError(f"--days {days}: a token lives 1 to 3650 days", "--days 90")
    token = new_token()
    with _owner(stack) as conn, conn.transaction():
        user_id = _upsert(conn, "app_users", user)
        sites = [_upsert(conn, "sites", name) for name in site_names]
        for site in sites:
            conn.execute(
                "INSERT INTO user_sites (user_id, site_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (user_id, site),
            )
        row = conn.execute(
            "INSERT INTO api_tokens (token_hash, user_id, expires_at) "
            "VALUES (%s, %s, now() + make_interval(days => %s)) "
            "RETURNING id, expires_at",
            (hash_token(token), user_id, days),
        ).fetchone()
    assert row is not None
    return IssuedToken(
        user=user,
        user_id=user_id,
        sites=sites,
        token=token,
        token_id=int(str(row[0])),
        expires_at=_iso(row[1]),
    )


def list_tokens(stack: Stack, user: str | None = None) -> list[TokenInfo]:
    """Every token (never its hash), newest first."""
    query = (
        "SELECT t.id, u.name, t.created_at, t.expires_at, t.revoked_at, CASE "
        "WHEN t.revoked_at IS NOT NULL THEN 'revoked' WHEN t.expires_at <= now() THEN 'expired' "
        "ELSE 'active' END FROM api_tokens t "
        "JOIN app_users u ON u.id = t.user_id WHERE %(user)s::text IS NULL OR u.name = %(user)s "
        "ORDER BY t.id DESC"
    )
    with _owner(stack) as conn:
        rows = conn.execute(query, {"user": user}).fetchall()
    return [
        TokenInfo(
            int(str(r[0])),
            str(r[1]),
            _iso(r[2]),
            _iso(r[3]),
            _iso(r[4]) if r[4] else None,
            str(r[5]),
        )
        for r in rows
    ]


def revoke_tokens(stack: Stack, token_id: int | None = None, user: str | None = None) -> int:
    """Revoke one token, or every active token of a user. How many were revoked; each
    instance stops accepting them within `token_cache_s` (30 s)."""
    if (token_id is None) == (user is None):
        raise HastackError("name one token (ID) or one user (--user)", "hastack app token list")
    query = "UPDATE api_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND " + (
        "id = %s"
        if token_id is not None
        else "user_id = (SELECT id FROM app_users WHERE name = %s)"
    )
    with _owner(stack) as conn:
        return conn.execute(query, (token_id if token_id is not None else user,)).rowcount


@contextlib.contextmanager
def _owner(stack: Stack) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection to the leader as the tables' owner; missing tables (not the demo app, or
    its migrations not applied) are said as such."""
    leader = stack.leader()
    if leader is None:
        raise HastackError(f"stack {stack.name!r} has no leader", "hastack status")
    try:
        with stack.connect(leader) as conn:
            conn.execute(f"SET ROLE {roles.OWNER}")
            yield conn
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        raise HastackError(
            "the app's tables do not exist: tokens are for the demo app (app.module), whose "
            "migrations `hastack up` applies",
            "hastack up",
        ) from None


def _iso(value: object) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def _upsert(conn: psycopg.Connection[tuple[object, ...]], table: str, name: str) -> int:
    # `table` is one of two fixed names, never user input.
    row = conn.execute(
        f"INSERT INTO {table} (name) VALUES (%s) ON CONFLICT (name) DO UPDATE "
        "SET name = EXCLUDED.name RETURNING id",
        (name,),
    ).fetchone()
    assert row is not None
    return int(str(row[0]))
