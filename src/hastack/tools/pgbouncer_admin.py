"""PgBouncer's admin console (the virtual `pgbouncer` database)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg


class PgBouncerUnavailable(Exception):
    pass


def _query(host: str, port: int, user: str, password: str, sql: str) -> list[dict[str, Any]]:
    try:
        with psycopg.connect(
            host=host,
            port=port,
            dbname="pgbouncer",
            user=user,
            password=password,
            connect_timeout=2,
            autocommit=True,
        ) as conn:
            cur = conn.execute(sql)
            if cur.description is None:
                return []
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    except psycopg.Error as exc:
        raise PgBouncerUnavailable(f"PgBouncer {host}:{port}: {str(exc).strip()[:200]}") from None


def show_pools(host: str, port: int, user: str, password: str) -> list[dict[str, Any]]:
    """One row per (database, user) pool, without the admin console's own pool."""
    rows = _query(host, port, user, password, "SHOW POOLS")
    return [
        {
            "database": r["database"],
            "user": r["user"],
            "cl_active": r["cl_active"],
            "cl_waiting": r["cl_waiting"],
            "sv_active": r["sv_active"],
            "sv_idle": r["sv_idle"],
            "sv_used": r["sv_used"],
            "maxwait_s": r["maxwait"],
            "pool_mode": r["pool_mode"],
        }
        for r in rows
        if r["database"] != "pgbouncer"
    ]


def command(host: str, port: int, user: str, password: str, sql: str, timeout_s: float) -> None:
    """Run an admin command (PAUSE, RESUME, RECONNECT...). PAUSE blocks until every server
    connection is released; past `timeout_s` the command is abandoned and an error raised."""
    result: list[BaseException | None] = []

    def target() -> None:
        try:
            _query(host, port, user, password, sql)
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not result:
        raise PgBouncerUnavailable(f"PgBouncer {sql!r} did not finish within {timeout_s:g} s")
    if result[0] is not None:
        raise result[0]
