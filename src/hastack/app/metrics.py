"""Prometheus metrics: requests by route template, method and status; latency histogram;
in-flight requests; pool usage and degraded-mode counters (Prometheus naming conventions)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class AppMetrics:
    """One registry per app, so several apps (or tests) never share series."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("http_requests_in_flight", "Requests being served", registry=r)
        self.pool_connections = Gauge(
            "db_pool_connections", "Database pool connections", ["pool", "state"], registry=r
        )
        self.rate_limit_failopen = Counter(
            "rate_limit_fail_open_total",
            "Requests let through because the rate-limit store (Redis) was unreachable",
            registry=r,
        )
        self.rate_limited = Counter(
            "rate_limited_total", "Requests answered 429", ["tier"], registry=r
        )
        self.cache_fallbacks = Counter(
            "cache_fallback_total", "Cache operations that fell back to the database", registry=r
        )
        self.replica_routed = Counter(
            "db_reads_total", "Reads by the pool that served them", ["pool"], registry=r
        )

    def endpoint(self, collect: Callable[[], None] | None = None) -> Callable[[Request], Response]:
        def metrics(_request: Request) -> Response:
            if collect is not None:
                collect()
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return metrics


class MetricsMiddleware:
    """Pure ASGI; the route label is the matched route's template (never the raw path, which
    would explode the series count)."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        self.metrics.in_flight.inc()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.duration.labels(method, template).observe(time.perf_counter() - start)
