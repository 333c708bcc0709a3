"""`create_app`: an ASGI app wired with everything hastack's app tier provides."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from hastack.app.auth import Authenticator
from hastack.app.cache import Cache
from hastack.app.db import Database
from hastack.app.errors import EXCEPTION_HANDLERS, BodyLimitMiddleware
from hastack.app.health import Health
from hastack.app.logs import AccessLog, configure_logging
from hastack.app.metrics import AppMetrics
from hastack.app.ratelimit import RateLimiter
from hastack.app.redisio import connect
from hastack.app.request import RequestMiddleware
from hastack.app.settings import AppSettings
from hastack.app.tasks import stop_task
from hastack.app.tracing import make_tracing


@dataclass
class Services:
    """What handlers reach through `request.app.state.services`."""

    settings: AppSettings
    metrics: AppMetrics
    db: Database
    redis: aioredis.Redis | None
    limiter: RateLimiter
    auth: Authenticator
    cache: Cache


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


BackgroundTask = Callable[[Services], Coroutine[Any, Any, None]]


def create_app(
    routes: Sequence[BaseRoute],
    settings: AppSettings | None = None,
    *,
    background: Sequence[BackgroundTask] = (),
    configure_logs: bool = True,
) -> Starlette:
    """The app with health (/health/live, /health/ready), /metrics and every middleware;
    `background` coroutines run for the app's lifetime."""
    settings = settings or AppSettings.from_env()
    if not settings.secret_key:
        # Sessions and signed URLs would be forgeable by anyone: refuse to start.
        raise RuntimeError(
            "HASTACK_APP_SECRET is empty: run the app with the environment `hastack env` prints"
        )
    if configure_logs:
        configure_logging(settings.instance)
    metrics = AppMetrics()
    tracing = make_tracing(settings)
    db = Database(settings, metrics, pool_size=settings.db_pool_size, tracing=tracing)
    client = connect(settings.redis_url)
    services = Services(
        settings=settings,
        metrics=metrics,
        db=db,
        redis=client,
        limiter=RateLimiter(settings.redis_url, settings.rate_limits, metrics),
        auth=Authenticator(db, client, settings.session_keys, settings.token_cache_s),
        cache=Cache(client, metrics),
    )
    health = Health(db, client, settings.degraded_without_redis)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await db.open()
        tasks = [asyncio.create_task(task(services)) for task in background]
        try:
            yield
        finally:
            # Cancelled, then waited for, beside the lag watcher's last query: a task stopped
            # inside a query has its cancel request answered before the pools close
            # (app/tasks.py says why; the spec's app.stop_wait_s leaves room for it).
            await asyncio.gather(db.stop_watching(), *(stop_task(task) for task in tasks))
            await db.close()
            if client is not None:
                await client.aclose()
            if tracing is not None:
                tracing.shutdown()

    access_log = AccessLog(settings.instance) if settings.access_log else None
    middleware = [
        Middleware(RequestMiddleware, metrics=metrics, access_log=access_log, tracing=tracing),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
    ]
    app = Starlette(
        routes=[
            Route("/health/live", health.live),
            Route("/health/ready", health.ready),
            Route("/metrics", metrics.endpoint(db.collect)),
            *routes,
        ],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.services = services
    return app
