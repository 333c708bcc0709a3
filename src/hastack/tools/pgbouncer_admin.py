"""PgBouncer's admin console (the virtual `pgbouncer` database)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg

from hastack.errors import Unavailable


class PgBouncerUnavailable(Unavailable):
    pass


class PgBouncerAdmin:
    def __init__(self, host: str, port: int, user: str, password: str, ca: Path) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.ca = ca

    def _query(self, sql: str) -> list[dict[str, Any]]:
        try:
            with psycopg.connect(
                host=self.host,
                port=self.port,
                dbname="pgbouncer",
                user=self.user,
                password=self.password,
                # PgBouncer refuses clients without TLS; its certificate names this address.
                sslmode="verify-full",
                sslrootcert=str(self.ca),
                connect_timeout=2,
                autocommit=True,
            ) as conn:
                cur = conn.execute(sql)
                if cur.description is None:
                    return []
                names = [d.name for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            raise PgBouncerUnavailable(
                f"PgBouncer {self.host}:{self.port}: {str(exc).strip()[:200]}",
                "hastack logs pgbouncer",
            ) from None

    def show_pools(self) -> list[dict[str, Any]]:
        """One row per (database, user) pool, without the admin console's own pool."""
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
            for r in self._query("SHOW POOLS")
            if r["database"] != "pgbouncer"
        ]

    def command(self, sql: str, timeout_s: float) -> None:
        """Run an admin command (PAUSE, RESUME, RECONNECT...). PAUSE blocks until every
        server connection is released; past `timeout_s` the command is abandoned and an error
        raised."""
        result: list[BaseException | None] = []

        def target() -> None:
            try:
                self._query(sql)
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
