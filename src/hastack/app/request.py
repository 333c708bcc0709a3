"""Everything done around each request, in one pure-ASGI layer: the request id, security and
rate-limit headers, Prometheus metrics, the access log.

One layer, not five: every middleware adds a coroutine frame and a wrapper around `send`, and
on a cheap request that overhead was most of the cost (profiled: five such layers took about
a third of a /whoami request). Each piece stays small and testable in its own module; this
only wires them.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hastack.app.logs import AccessLog
from hastack.app.metrics import AppMetrics
from hastack.app.requestid import REQUEST_ID, request_id_from
from hastack.app.security import DEFAULT_HEADERS
from hastack.app.tracing import TRACE_ID, Tracing, trace_id_of


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: AppMetrics,
        access_log: AccessLog | None = None,
        request_id_header: str = "x-request-id",
        security_headers: tuple[tuple[bytes, bytes], ...] = DEFAULT_HEADERS,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.metrics = metrics
        self.access_log = access_log
        self.id_header = request_id_header.lower().encode()
        self.security_headers = security_headers
        # The headers this layer sets, replacing any the app set itself.
        self.replaced = {name for name, _ in security_headers} | {self.id_header}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"], self.id_header)
        token = REQUEST_ID.set(request_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        start = time.perf_counter()
        status = 500
        metrics = self.metrics
        metrics.in_flight.inc()
        tracing, trace_id = self.tracing, ""
        if tracing is not None:
            span, span_token = tracing.start_request(
                scope["method"], scope["path"], scope["headers"], request_id
            )
            trace_id = trace_id_of(span)
            trace_token = TRACE_ID.set(trace_id)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                added = [*self.security_headers, (self.id_header, request_id.encode())]
                names = self.replaced
                verdict = state.get("ratelimit")
                if verdict is not None:  # the last rate-limit check made for this request
                    limits = verdict.raw_headers()
                    added += limits
                    names = names | {name for name, _ in limits}
                message["headers"] = [
                    *((k, v) for k, v in message.get("headers", []) if k not in names),
                    *added,
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - start
            metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            metrics.observe_request(method, route, status, elapsed)
            if tracing is not None:
                tracing.end_request(span, span_token, method, route, status)
                TRACE_ID.reset(trace_token)
            if self.access_log is not None:
                # The client as uvicorn's proxy-headers layer resolved it: the address HAProxy
                # saw, taken from X-Forwarded-For only because HAProxy sent it.
                client = scope.get("client") or ("", 0)
                self.access_log.write(
                    self.access_log.line(
                        time.time(),
                        request_id,
                        method,
                        scope["path"],
                        status,
                        elapsed * 1000,
                        client[0],
                        trace_id,
                    )
                )
            REQUEST_ID.reset(token)
