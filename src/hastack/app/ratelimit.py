"""Rate-limit tiers backed by Redis, at most one round trip per check, failing open.

The per-client limit for everyone lives at the edge (HAProxy's stick table: < 5 % cost); the
tiers here apply where identity matters (a token's user, a login name, heavy writes). A fixed
window counted in Redis through `limits`' storage (INCRBY + EXPIRE in one round trip); the
window index in the key gives the reset time without a second one.

A round trip per request would cost more than the rest of the request (measured: the full
path fell to 0.1x of a bare endpoint). So an instance takes tokens from the shared counter in
leases of up to 5 % of the limit (1 for small limits such as 5 logins a minute: exact) and
spends them locally. Only tokens under the limit are ever granted, so the tier is never
exceeded across instances; an instance may hold a few unspent ones while another is refused
(at most one lease per other instance per window). Once the shared counter is seen at the
limit, the rest of the window is refused without asking Redis again.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

import limits
from limits.aio.storage import RedisStorage
from starlette.exceptions import HTTPException
from starlette.requests import Request

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

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return [(k.lower().encode(), v.encode()) for k, v in self.headers().items()]


def window_key(tier: str, identity: str, window_s: int, now: float) -> tuple[str, int]:
    """(counter key, seconds until the window resets). The identity is hashed: a client
    chooses it (a login name), and a fixed-size key keeps a huge or odd one out of Redis."""
    index = int(now // window_s)
    reset = max(1, math.ceil((index + 1) * window_s - now))
    return f"hastack/rl/{tier}/{identity_key(identity)}/{index}", reset


def identity_key(identity: str) -> str:
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def lease_size(limit: int) -> int:
    """Tokens taken from the shared counter per round trip."""
    return max(1, limit // 20)


def granted_from(total_after: int, lease: int, limit: int) -> int:
    """Of the `lease` tokens just added to the shared counter (now `total_after`), how many
    fall within the limit."""
    return max(0, min(lease, limit - (total_after - lease)))


@dataclass
class Allowance:
    """This instance's share of one key's window."""

    ends_at: float
    granted: int = 0
    used: int = 0
    shared_total: int = 0
    """The shared counter after this instance's last lease."""

    def spend(self) -> bool:
        if self.used < self.granted:
            self.used += 1
            return True
        return False

    def add_lease(self, total_after: int, lease: int, limit: int) -> None:
        """Record a lease: the shared counter is `total_after` once `lease` was added."""
        self.granted += granted_from(total_after, lease, limit)
        self.shared_total = max(self.shared_total, total_after)

    def remaining(self, limit: int) -> int:
        return max(0, limit - self.shared_total) + (self.granted - self.used)

    def exhausted(self, limit: int) -> bool:
        """The shared counter only grows within a window: once at the limit, nothing is left
        to lease."""
        return self.used >= self.granted and self.shared_total >= limit


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
        self._allowances: dict[str, Allowance] = {}

    async def check(self, tier: str, identity: str) -> Verdict:
        item = self.tiers[tier]
        limit = item.amount
        window = item.get_expiry()
        now = time.time()
        key, reset = window_key(tier, identity, window, now)
        if self.storage is None:
            return Verdict(True, limit, limit, reset)
        allowance = self._allowances.get(key)
        if allowance is None:
            allowance = self._allowances[key] = Allowance(ends_at=now + reset)
            self._forget_old_windows(now)
        if allowance.spend():
            return Verdict(True, limit, allowance.remaining(limit), reset)
        if not allowance.exhausted(limit):
            lease = lease_size(limit)
            try:
                total = await self.storage.incr(key, expiry=window * 2, amount=lease)
            except Exception as exc:
                self.metrics.rate_limit_failopen.inc()
                if time.monotonic() - self._warned_at > 10:
                    self._warned_at = time.monotonic()
                    LOG.warning("rate limits fail open: Redis unreachable (%s)", type(exc).__name__)
                return Verdict(True, limit, limit, reset)
            allowance.add_lease(total, lease, limit)
            if allowance.spend():
                return Verdict(True, limit, allowance.remaining(limit), reset)
        self.metrics.rate_limited.labels(tier).inc()
        return Verdict(False, limit, 0, reset)

    def _forget_old_windows(self, now: float) -> None:
        if len(self._allowances) > 4096:
            for key in [k for k, a in self._allowances.items() if a.ends_at <= now]:
                del self._allowances[key]

    async def enforce(self, request: Request, tier: str, identity: str) -> None:
        """Raise 429 (with Retry-After and RateLimit headers) when over the tier's limit;
        otherwise remember the headers for the response."""
        verdict = await self.check(tier, identity)
        request.scope.setdefault("state", {})["ratelimit"] = verdict
        if not verdict.allowed:
            raise HTTPException(429, "rate limit exceeded", headers=verdict.headers())
