"""A cache in Redis that degrades to the database (the loader) when Redis is down."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from hastack.app.metrics import AppMetrics

LOG = logging.getLogger("hastack.cache")


class Cache:
    def __init__(
        self, client: aioredis.Redis | None, metrics: AppMetrics, prefix: str = "hastack/cache/"
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.prefix = prefix

    async def get_or_load(
        self, key: str, loader: Callable[[], Awaitable[Any]], ttl_s: int = 30
    ) -> Any:
        """The cached JSON value, else `loader()`'s (then cached). Redis errors fall back to
        the loader, counted in cache_fallback_total."""
        full = self.prefix + key
        if self.client is not None:
            try:
                raw = await self.client.get(full)
                if raw is not None:
                    return json.loads(raw)
            except redis.exceptions.RedisError:
                self.metrics.cache_fallbacks.inc()
                return await loader()
        value = await loader()
        if self.client is not None:
            try:
                await self.client.set(full, json.dumps(value, default=str), ex=ttl_s)
            except redis.exceptions.RedisError:
                self.metrics.cache_fallbacks.inc()
        return value

    async def invalidate(self, key: str) -> None:
        if self.client is None:
            return
        try:
            await self.client.delete(self.prefix + key)
        except redis.exceptions.RedisError:
            self.metrics.cache_fallbacks.inc()
