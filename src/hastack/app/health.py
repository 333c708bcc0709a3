"""/health/live (the process answers) and /health/ready (this instance can serve; its
dependencies' state in the body).

HAProxy checks /health/ready, so it must ask only what is local to the instance. The database
and Redis are shared: when they fail, they fail for every instance at once, and taking every
instance out of rotation would turn a database failover into HAProxy's own 503 for every
request, those that need no database included. The routes that need the database answer
503 + Retry-After themselves; readiness reports the state as `degraded`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from psycopg import Error as PgError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hastack.app.db import Database

CACHE_S = 0.25
"""Readiness is recomputed at most this often, so a burst of checks costs one probe."""


class Health:
    def __init__(self, db: Database, client: aioredis.Redis | None, degraded_ok: bool) -> None:
        self.db = db
        self.redis = client
        self.degraded_ok = degraded_ok
        self._cached: tuple[float, int, dict[str, Any]] | None = None
        self._refreshing: asyncio.Task[tuple[float, int, dict[str, Any]]] | None = None

    async def live(self, _request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(self, _request: Request) -> Response:
        """Answers at once with the last probe's result; a stale one is refreshed in the
        background. A probe of a dependency that hangs (the database during a failover: up
        to its 1 s timeout) must never make HAProxy's check time out: that would take every
        instance out of rotation, the very thing readiness must not do."""
        cached = self._cached
        if cached is None:  # the first check after start: nothing known yet
            cached = await self._refresh()
        elif time.monotonic() - cached[0] > CACHE_S and (
            self._refreshing is None or self._refreshing.done()
        ):
            self._refreshing = asyncio.create_task(self._refresh())
        _, status, body = cached
        return JSONResponse(body, status_code=status)

    async def _refresh(self) -> tuple[float, int, dict[str, Any]]:
        status, body = await self._probe()
        self._cached = (time.monotonic(), status, body)
        return self._cached

    async def _probe(self) -> tuple[int, dict[str, Any]]:
        if not self.db.is_open:  # this instance cannot serve at all
            return 503, {"status": "unavailable", "failing": ["pools"], "checks": {}}
        db_ok, redis_ok = await asyncio.gather(self._database(), self._redis())
        checks = {
            "database": "ok" if db_ok else "down",
            "redis": "ok" if redis_ok else ("down" if self.redis is not None else "absent"),
        }
        failing = [name for name, state in checks.items() if state == "down"]
        if "redis" in failing and not self.degraded_ok:  # the operator asked for this
            return 503, {"status": "unavailable", "failing": failing, "checks": checks}
        if failing:
            return 200, {"status": "degraded", "failing": failing, "checks": checks}
        return 200, {"status": "ready", "checks": checks}

    async def _database(self) -> bool:
        try:
            await asyncio.wait_for(self.db.ping(), timeout=1.0)
        except (PgError, OSError, TimeoutError):
            return False
        return True

    async def _redis(self) -> bool:
        if self.redis is None:
            return True
        try:
            await self.redis.ping()
        except (redis.exceptions.RedisError, OSError):
            return False
        return True
