"""Errors as JSON, with the request id, and never a stack trace to the client."""

from __future__ import annotations

import logging

import psycopg
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hastack.app.requestid import current_request_id

LOG = logging.getLogger("hastack.errors")


def _body(message: str, **extra: object) -> dict[str, object]:
    return {"error": message, "request_id": current_request_id(), **extra}


def _request_id_of(request: Request) -> str:
    """Starlette answers a 500 outside every middleware, where the request id's context
    variable is already reset: the id is also kept in the scope."""
    return str(request.scope.get("state", {}).get("request_id", current_request_id()))


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


async def validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    fields = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
    ]
    return JSONResponse(_body("invalid request body", fields=fields), status_code=422)


class InvalidBody(Exception):
    """A body that is not even JSON: 422 naming the field (`body`), like a validation error."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


async def invalid_body(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidBody)
    fields = [{"field": exc.field, "message": exc.message}]
    return JSONResponse(_body("invalid request body", fields=fields), status_code=422)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """The database cannot answer right now (a failover, a pooler restart, a primary that is
    read-only for a moment): 503 with Retry-After, which clients and HAProxy (for safe
    methods) retry, rather than a 500 that says the app is broken."""
    LOG.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
    )
    return JSONResponse(
        _body("database unavailable, retry shortly"),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def internal_error(request: Request, exc: Exception) -> Response:
    LOG.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    request_id = _request_id_of(request)
    return JSONResponse(
        {"error": "internal error", "request_id": request_id},
        status_code=500,
        headers={"X-Request-ID": request_id},
    )


EXCEPTION_HANDLERS = {
    HTTPException: http_error,
    ValidationError: validation_error,
    InvalidBody: invalid_body,
    # Connection lost or refused, server shutting down, pool exhausted (PoolTimeout is an
    # OperationalError), a node still in recovery (SQLSTATE 25006 while a promotion
    # completes).
    psycopg.OperationalError: database_unavailable,
    psycopg.errors.ReadOnlySqlTransaction: database_unavailable,
    Exception: internal_error,
}


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`: by Content-Length up front, or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse(_body("request body too large"), status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, limited, send)
