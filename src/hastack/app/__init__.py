"""hastack's app tier: what an ASGI app (Starlette/FastAPI) behind hastack needs.

Health and readiness, Prometheus metrics, request ids and JSON logs, security headers,
Redis-backed rate-limit tiers that fail open, API tokens and Redis sessions, tenant-scoped
transactions for row-level security, read/write routing with a lag guard, a cache that
degrades to the database, and signed expiring URLs.
"""

from hastack.app.auth import Principal, tenant_id
from hastack.app.factory import Services, create_app, services_of
from hastack.app.settings import AppSettings, RateLimits
from hastack.app.signing import SignatureError, sign_url, verify_url
from hastack.app.tokens import hash_token, new_token

__all__ = [
    "AppSettings",
    "Principal",
    "RateLimits",
    "Services",
    "SignatureError",
    "create_app",
    "hash_token",
    "new_token",
    "services_of",
    "sign_url",
    "tenant_id",
    "verify_url",
]
