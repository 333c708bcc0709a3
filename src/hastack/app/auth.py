"""Who is calling and which sites they may touch: bearer API tokens (stored hashed) or a
session cookie (session state in Redis, so sticky sessions are an optimisation, not a
requirement)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from cachetools import TTLCache
from starlette.exceptions import HTTPException
from starlette.requests import Request

from hastack.app.db import Database
from hastack.app.keys import SESSION_TTL_S
from hastack.app.tokens import hash_token

SESSION_COOKIE = "hastack_session"


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    sites: frozenset[int]
    session_id: str | None = None


def sign(secret: str, value: str) -> str:
    mac = hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{value}.{mac}"


def unsign(secret: str | Sequence[str], signed: str) -> str | None:
    """The value, if any of the keys signed it (a rotation accepts more than one)."""
    keys = [secret] if isinstance(secret, str) else secret
    value, _, _mac = signed.rpartition(".")
    if value and any(hmac.compare_digest(sign(key, value), signed) for key in keys):
        return value
    return None


TOKEN_CACHE_ENTRIES = 10_000
MAX_TOKEN_CHARS = 128
"""Ours are ~48 characters; anything much longer is not one of ours."""

PRINCIPAL_SQL = """
SELECT u.id, u.name, coalesce(array_agg(s.site_id) FILTER (WHERE s.site_id IS NOT NULL), '{}')
FROM app_users u LEFT JOIN user_sites s ON s.user_id = u.id
WHERE u.id = %s GROUP BY u.id, u.name
"""

# The token's user and that user's sites in one statement, so a lookup is one round trip.
TOKEN_PRINCIPAL_SQL = PRINCIPAL_SQL.replace(
    "WHERE u.id = %s",
    "WHERE u.id = (SELECT user_id FROM api_tokens WHERE token_hash = %s "
    "AND revoked_at IS NULL AND expires_at > now())",
)


class Authenticator:
    def __init__(
        self,
        db: Database,
        redis_client: aioredis.Redis | None,
        keys: Callable[[], Sequence[str]],
        cache_s: float,
    ) -> None:
        """`keys()`: the session key that signs, then those still accepted (a rotation)."""
        self.db = db
        self.redis = redis_client
        self.keys = keys
        self.cache_s = cache_s
        # Bounded: unknown tokens are cached too (a miss costs a query), and random ones
        # must not grow the process without end.
        self._tokens: TTLCache[str, Principal | None] = TTLCache(
            maxsize=TOKEN_CACHE_ENTRIES, ttl=max(cache_s, 0.001)
        )

    async def principal(self, request: Request) -> Principal | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return await self._from_token(auth[7:].strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await self._from_session(cookie)
        return None

    async def require(self, request: Request) -> Principal:
        principal = await self.principal(request)
        if principal is None:
            raise HTTPException(401, "authentication required", {"WWW-Authenticate": "Bearer"})
        request.scope.setdefault("state", {})["principal"] = principal
        return principal

    async def _from_token(self, token: str) -> Principal | None:
        if len(token) > MAX_TOKEN_CHARS:
            return None
        digest = hash_token(token)
        if self.cache_s > 0 and digest in self._tokens:
            return self._tokens[digest]
        principal = _principal(await self.db.fetch(TOKEN_PRINCIPAL_SQL, (digest,), readonly=True))
        if self.cache_s > 0:
            self._tokens[digest] = principal
        return principal

    async def _from_session(self, cookie: str) -> Principal | None:
        session_id = unsign(self.keys(), cookie)
        if session_id is None or self.redis is None:
            return None
        try:
            user_id = await self.redis.hget(f"hastack/session/{session_id}", "user_id")
        except redis.exceptions.RedisError:
            return None  # sessions need Redis; bearer tokens keep working without it
        if user_id is None:
            return None
        principal = _principal(await self.db.fetch(PRINCIPAL_SQL, (int(user_id),), readonly=True))
        if principal is None:
            return None
        return Principal(principal.user_id, principal.name, principal.sites, session_id)

    async def login(self, user_name: str, token: str) -> tuple[Principal, str]:
        """Exchange a valid API token for a session cookie value."""
        principal = await self._from_token(token)
        if principal is None or principal.name != user_name:
            raise HTTPException(401, "invalid credentials")
        if self.redis is None:
            raise HTTPException(503, "sessions need Redis, which is not configured")
        session_id = secrets.token_urlsafe(24)
        try:
            await self.redis.hset(
                f"hastack/session/{session_id}", mapping={"user_id": principal.user_id}
            )
            await self.redis.expire(f"hastack/session/{session_id}", SESSION_TTL_S)
        except redis.exceptions.RedisError:
            raise HTTPException(503, "sessions are unavailable while Redis is down") from None
        return principal, sign(self.keys()[0], session_id)

    async def logout(self, principal: Principal) -> None:
        if principal.session_id and self.redis is not None:
            with contextlib.suppress(redis.exceptions.RedisError):
                await self.redis.delete(f"hastack/session/{principal.session_id}")


def tenant_id(request: Request, principal: Principal, header: str) -> int:
    """The site named by the tenant header, which the principal must be allowed: 403
    otherwise (missing, malformed, or a site the user lacks)."""
    raw = request.headers.get(header)
    if raw is None:
        raise HTTPException(403, f"missing {header} header")
    try:
        site = int(raw)
    except ValueError:
        raise HTTPException(403, f"malformed {header} header") from None
    if site not in principal.sites:
        raise HTTPException(403, f"site {site} is not allowed for this user")
    return site


def _principal(rows: list[tuple[Any, ...]]) -> Principal | None:
    if not rows:
        return None
    user_id, name, sites = rows[0]
    return Principal(user_id=int(user_id), name=str(name), sites=frozenset(sites))
