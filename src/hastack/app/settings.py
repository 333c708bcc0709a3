"""Settings of an app behind hastack: connection URLs and secrets from the environment (as
`hastack env` prints them), everything else from the JSON file hastack renders."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hastack.app.keys import SESSIONS, SIGNED_URLS, derive_key


@functools.lru_cache(maxsize=16)
def _derived(secret: str, purpose: str) -> str:
    """Keys are derived once per secret and purpose (the signing key and any accepted one
    are asked for on every request that carries a cookie or a signed URL)."""
    return derive_key(secret, purpose)


@dataclass(frozen=True)
class RateLimits:
    """`limits` strings ("100/minute"). Anonymous clients are limited at the edge (HAProxy);
    these tiers apply where identity matters."""

    authenticated: str = "1000/second"
    heavy_write: str = "20/hour"
    login: str = "5/minute"


@dataclass(frozen=True)
class AppSettings:
    database_url: str
    database_url_ro: str | None = None
    redis_url: str | None = None
    secret_key: str = ""
    """Signs session cookies and download URLs (HASTACK_APP_SECRET)."""
    accepted_secret_keys: tuple[str, ...] = ()
    """Other keys whose cookies and URLs are still accepted, never used to sign
    (HASTACK_APP_SECRETS_ACCEPTED, comma-separated): the next key while a rotation rolls
    out, then the previous one for a grace period."""
    accepted_until: float = 0.0
    """Epoch seconds after which accepted_secret_keys are refused
    (HASTACK_APP_SECRETS_ACCEPTED_UNTIL)."""
    tenant_header: str = "X-Site-ID"
    rate_limits: RateLimits = field(default_factory=RateLimits)
    replica_max_lag_s: float = 1.0
    """Reads go to the replicas only while their replay lag is below this."""
    read_your_writes_s: float = 5.0
    """After a write, a session's reads go to the primary for this long."""
    degraded_without_redis: bool = True
    """Stay ready (degraded: no cache, limits fail open) when Redis is down."""
    max_body_bytes: int = 1_000_000
    token_cache_s: float = 30.0
    """How long an API token lookup is cached in the process (revocation delay)."""
    access_log: bool = True
    db_pool_size: int = 10
    """Connections per database pool (read-write, read-only)."""
    instance: str = ""
    """The instance name (app1..N), in logs and metrics."""
    trace_endpoint: str | None = None
    """OTLP/HTTP endpoint for traces (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); None: no tracing."""
    trace_sample_ratio: float = 0.1
    """Share of new traces kept (OTEL_TRACES_SAMPLER_ARG), parent-based."""
    service_name: str = "hastack-app"
    """OTEL_SERVICE_NAME."""

    @property
    def session_key(self) -> str:
        return _derived(self.secret_key, SESSIONS)

    @property
    def url_key(self) -> str:
        return _derived(self.secret_key, SIGNED_URLS)

    def session_keys(self, now: float | None = None) -> tuple[str, ...]:
        """The signing key first, then every accepted one still within its time."""
        return (self.session_key, *self._accepted(SESSIONS, now))

    def url_keys(self, now: float | None = None) -> tuple[str, ...]:
        return (self.url_key, *self._accepted(SIGNED_URLS, now))

    def _accepted(self, purpose: str, now: float | None) -> tuple[str, ...]:
        if (time.time() if now is None else now) >= self.accepted_until:
            return ()
        return tuple(_derived(key, purpose) for key in self.accepted_secret_keys)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        env = os.environ if env is None else env
        if "DATABASE_URL" not in env:
            raise RuntimeError(
                "DATABASE_URL is not set: run the app with the environment `hastack env` prints"
            )
        extra: dict[str, Any] = {}
        config = env.get("HASTACK_APP_CONFIG")
        if config:
            extra = json.loads(Path(config).read_text())
        known = {f.name for f in fields(cls)}
        limits = extra.pop("rate_limits", None)
        values = {k: v for k, v in extra.items() if k in known}
        if limits:
            values["rate_limits"] = RateLimits(**limits)
        return cls(
            database_url=env["DATABASE_URL"],
            database_url_ro=env.get("DATABASE_URL_RO"),
            redis_url=env.get("REDIS_URL"),
            secret_key=env.get("HASTACK_APP_SECRET", ""),
            accepted_secret_keys=tuple(
                k for k in env.get("HASTACK_APP_SECRETS_ACCEPTED", "").split(",") if k
            ),
            accepted_until=float(env.get("HASTACK_APP_SECRETS_ACCEPTED_UNTIL", "0") or 0),
            instance=env.get("HASTACK_INSTANCE", ""),
            trace_endpoint=env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or None,
            trace_sample_ratio=_ratio(env.get("OTEL_TRACES_SAMPLER_ARG")),
            service_name=env.get("OTEL_SERVICE_NAME") or "hastack-app",
            **values,
        )


def _ratio(text: str | None) -> float:
    """OTEL_TRACES_SAMPLER_ARG: a ratio in [0, 1] (0.1 when unset, the spec's default); a
    bad value stops the app at start rather than tracing everything or nothing."""
    if not text:
        return 0.1
    try:
        value = float(text)
    except ValueError:
        raise RuntimeError(f"OTEL_TRACES_SAMPLER_ARG={text!r} is not a number in [0, 1]") from None
    if not 0.0 <= value <= 1.0:
        raise RuntimeError(f"OTEL_TRACES_SAMPLER_ARG={text!r} is not a number in [0, 1]")
    return value
