"""Rate-limit tiers backed by Redis, one round trip per check, failing open.

The per-client limit for everyone lives at the edge (HAProxy's stick table: < 5 % cost); the
tiers here apply where identity matters (a token's user, a login name, heavy writes). A
fixed window counted with one INCR (+EXPIRE) through `limits`' Redis storage; the window
index in the key gives the reset time without a second round trip.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import limits
from limits.aio.storage import RedisStorage
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hastack.app.metrics import AppMetrics
from hastack.app.redisio import TIMEOUT_S
from hastack.app.settings import RateLimits

LOG = logging.getLogger("hastack.ratelimit")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        """IETF RateLimit header fields (and Retry-After when denied)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_s)
        return headers


def window_key(tier: str, identity: str, window_s: int, now: float) -> tuple[str, int]:
    """(counter key, seconds until the window resets)."""
    index = int(now // window_s)
    reset = max(1, math.ceil((index + 1) * window_s - now))
    return f"hastack/rl/{tier}/{identity}/{index}", reset


class RateLimiter:
    def __init__(self, redis_url: str | None, tiers: RateLimits, metrics: AppMetrics) -> None:
        self.metrics = metrics
        self.tiers = {
            "authenticated": limits.parse(tiers.authenticated),
            "heavy_write": limits.parse(tiers.heavy_write),
            "login": limits.parse(tiers.login),
        }
        self.storage = (
            RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1),
                implementation="redispy",
                socket_timeout=TIMEOUT_S,
                socket_connect_timeout=TIMEOUT_S,
            )
            if redis_url
            else None
        )
        self._warned_at = 0.0

    async def check(self, tier: str, identity: str) -> Verdict:
        item = self.tiers[tier]
        window = item.get_expiry()
        key, reset = window_key(tier, identity, window, time.time())
        if self.storage is None:
            return Verdict(True, item.amount, item.amount, reset)
        try:
            count = await self.storage.incr(key, expiry=window * 2)
        except Exception as exc:
            self.metrics.rate_limit_failopen.inc()
            if time.monotonic() - self._warned_at > 10:
                self._warned_at = time.monotonic()
                LOG.warning("rate limits fail open: Redis unreachable (%s)", type(exc).__name__)
            return Verdict(True, item.amount, item.amount, reset)
        allowed = count <= item.amount
        if not allowed:
            self.metrics.rate_limited.labels(tier).inc()
        return Verdict(allowed, item.amount, max(0, item.amount - count), reset)

    async def enforce(self, request: Request, tier: str, identity: str) -> None:
        """Raise 429 (with Retry-After and RateLimit headers) when over the tier's limit;
        otherwise remember the headers for the response."""
        verdict = await self.check(tier, identity)
        request.scope.setdefault("state", {})["ratelimit"] = verdict
        if not verdict.allowed:
            raise HTTPException(429, "rate limit exceeded", headers=verdict.headers())


class RateLimitHeadersMiddleware:
    """Adds the RateLimit-* headers of the last check made for this request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add(message: Message) -> None:
            verdict = scope.get("state", {}).get("ratelimit")
            if message["type"] == "http.response.start" and verdict is not None:
                names = {k.lower().encode() for k in verdict.headers()}
                kept = [(k, v) for k, v in message.get("headers", []) if k not in names]
                extra = [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]
                message["headers"] = [*kept, *extra]
            await send(message)

        await self.app(scope, receive, add)
