"""Prometheus metrics: requests by route template, method and status; latency histogram;
in-flight requests; pool usage and degraded-mode counters (Prometheus naming conventions)."""

from __future__ import annotations

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
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
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

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are cached: `labels()` validates and locks on every call,
        # which cost more than the increment itself. Routes are templates, so the key set is
        # small and bounded.
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def endpoint(self, collect: Callable[[], None] | None = None) -> Callable[[Request], Response]:
        def metrics(_request: Request) -> Response:
            if collect is not None:
                collect()
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return metrics
