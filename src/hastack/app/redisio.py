"""The Redis connection an app shares for sessions, cache and rate limits, with short
timeouts: a dead Redis must cost a request milliseconds, not seconds."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

TIMEOUT_S = 0.25


def connect(url: str | None) -> aioredis.Redis | None:
    if not url:
        return None
    return aioredis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_S,
        socket_connect_timeout=TIMEOUT_S,
        # redis-py retries a refused connection 3 times with back-off by default (~3 s).
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
