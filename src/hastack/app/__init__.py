"""hastack's app tier: what an ASGI app (Starlette/FastAPI) behind hastack needs.

Health and readiness, Prometheus metrics, request ids and JSON logs, security headers,
Redis-backed rate-limit tiers that fail open, API tokens and Redis sessions, tenant-scoped
transactions for row-level security, read/write routing with a lag guard, a cache that
degrades to the database, and signed expiring URLs.

The names below are loaded on first use: the CLI imports `hastack.app.tokens` (to issue demo
tokens) and must not pay for Starlette, uvicorn and the rest of the web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hastack.app.auth import Principal, tenant_id
    from hastack.app.factory import Services, create_app, services_of
    from hastack.app.settings import AppSettings, RateLimits
    from hastack.app.signing import SignatureError, sign_url, verify_url
    from hastack.app.tokens import hash_token, new_token

_WHERE = {
    "Principal": "auth",
    "tenant_id": "auth",
    "Services": "factory",
    "create_app": "factory",
    "services_of": "factory",
    "AppSettings": "settings",
    "RateLimits": "settings",
    "SignatureError": "signing",
    "sign_url": "signing",
    "verify_url": "signing",
    "hash_token": "tokens",
    "new_token": "tokens",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'hastack.app' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hastack.app.{_WHERE[name]}"), name)
