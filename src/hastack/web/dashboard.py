"""hastack's live web dashboard: one page an operator keeps open.

Read-only, HTTPS only, behind the monitoring login (user `hastack`, the generated
`monitoring_password`), run by supervisord as the monitoring user (web/server.py). The page
polls `/api/state` every second (topology, backends, pools, instances, alerts, backups, the
watcher's decisions, drill history) and `/api/charts` every 15 s (small charts from
Prometheus). The topology is Patroni's own answer at each refresh; what comes from
Prometheus is cached for 2 s, so several open pages cost the stack no more than one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hastack.web import view
from hastack.web.sources import DashboardConfig, Sources, read_report

CACHE_S = 2.0
CHART_WINDOW_S = 15 * 60
CHART_STEP_S = 15
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
    "Cache-Control": "no-store",
}


def authorized(header: str | None, user: str, password: str) -> bool:
    """HTTP Basic credentials equal to (user, password), compared in constant time."""
    if not header or not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    name, _, secret = given.partition(":")
    return hmac.compare_digest(name.encode(), user.encode()) & hmac.compare_digest(
        secret.encode(), password.encode()
    )


class LoginRequired:
    """Every path behind the monitoring login; security headers on every answer."""

    def __init__(self, app: ASGIApp, config: DashboardConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        header = headers.get(b"authorization", b"").decode("latin-1") or None
        try:
            password = self.config.password()
        except OSError:
            password = ""
        if not password or not authorized(header, self.config.user, password):
            response = Response(
                "login required\n",
                status_code=401,
                headers={**SECURITY_HEADERS, "WWW-Authenticate": 'Basic realm="hastack"'},
            )
            await response(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(
                        (k.lower().encode(), v.encode())
                        for k, v in SECURITY_HEADERS.items()
                        if k.lower().encode() not in present
                    ),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class Cached:
    """The last value of an async producer, recomputed at most every `ttl_s`."""

    def __init__(self, produce: Callable[[], Awaitable[dict[str, Any]]], ttl_s: float) -> None:
        self.produce = produce
        self.ttl_s = ttl_s
        self.value: dict[str, Any] = {}
        self.at = -float("inf")
        self.lock = asyncio.Lock()

    async def get(self) -> dict[str, Any]:
        async with self.lock:
            if time.monotonic() - self.at >= self.ttl_s:
                self.value = await self.produce()
                self.at = time.monotonic()
            return self.value


def _static(name: str) -> bytes:
    return resources.files("hastack.web").joinpath("static", name).read_bytes()


def create_dashboard(config: DashboardConfig) -> Starlette:
    sources = Sources(config)

    async def slow_parts() -> dict[str, Any]:
        """What Prometheus and Alertmanager know (scraped every few seconds anyway)."""
        errors: list[str] = []

        async def vector(expr: str) -> view.Vector:
            try:
                return await sources.query(expr)
            except Exception as exc:  # one failing source leaves the others shown
                errors.append(f"Prometheus: {type(exc).__name__}")
                return []

        async def active_alerts() -> list[dict[str, Any]]:
            try:
                return await sources.alerts()
            except Exception as exc:
                errors.append(f"Alertmanager: {type(exc).__name__}")
                return []

        pool_keys = list(view.POOL_SERIES)
        results = await asyncio.gather(
            vector("haproxy_server_status"),
            vector('up{job="app"}'),
            vector("hastack_backup_last_success_timestamp_seconds"),
            *(vector(view.POOL_SERIES[k]) for k in pool_keys),
            active_alerts(),
        )
        status, up, last_backup, *pool_vectors, firing = results
        return {
            "backends": view.backends(status),
            "apps": view.apps(up),
            "backups": view.backups(last_backup, time.time()),
            "pools": view.pools(dict(zip(pool_keys, pool_vectors, strict=True))),
            "alerts": view.alerts(firing),
            "errors": sorted(set(errors)),
        }

    async def charts() -> dict[str, Any]:
        async def one(chart: dict[str, str]) -> dict[str, Any]:
            try:
                matrix = await sources.query_range(chart["query"], CHART_WINDOW_S, CHART_STEP_S)
                points, error = view.series(matrix), None
            except Exception as exc:
                points, error = [], f"{type(exc).__name__}"
            return {
                "title": chart["title"],
                "unit": chart["unit"],
                "points": points,
                "error": error,
            }

        return {"charts": await asyncio.gather(*(one(c) for c in config.charts))}

    cached_slow = Cached(slow_parts, CACHE_S)
    cached_charts = Cached(charts, 10.0)

    async def state(_request: Request) -> Response:
        errors: list[str] = []
        try:
            topology = view.topology(await sources.cluster())
        except Exception as exc:
            topology = {"leader": None, "members": []}
            errors.append(str(exc))
        slow = await cached_slow.get()
        body = {
            "stack": config.stack,
            "at": time.time(),
            **topology,
            **{k: v for k, v in slow.items() if k != "errors"},
            "decisions": sources.decisions()[:15],
            "drills": [view.drill_summary(n, r) for n, r in sources.drill_reports()],
            "errors": errors + slow["errors"],
        }
        return JSONResponse(body)

    async def chart_data(_request: Request) -> Response:
        return JSONResponse(await cached_charts.get())

    async def page(_request: Request) -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8")

    async def script(_request: Request) -> Response:
        return Response(_static("dashboard.js"), media_type="text/javascript; charset=utf-8")

    async def style(_request: Request) -> Response:
        return Response(_static("dashboard.css"), media_type="text/css; charset=utf-8")

    async def drill_report(request: Request) -> Response:
        name = request.path_params["name"]
        content = read_report(Path(config.drills_dir), name)
        if content is None or not name.endswith(".html"):
            return Response("no such report\n", status_code=404)
        # A report is one self-contained file: its own inline style, nothing else.
        policy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        return Response(
            content,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": policy},
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sources.close()

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/dashboard.js", script),
            Route("/dashboard.css", style),
            Route("/api/state", state),
            Route("/api/charts", chart_data),
            Route("/drills/{name}", drill_report),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(LoginRequired, config=config)
    return app
