"""The baseline for `hastack bench http`: a Starlette route answering like /health/live, with
no middleware. The app tier's middleware path is compared against it (same framework, same
server); `raw_app` is plain ASGI, reported for reference."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

BODY = b'{"status":"live"}'


async def live(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "live"})


app = Starlette(routes=[Route("/", live)])


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})
