"""Request bodies an app can trust the shape of."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from hastack.app.errors import InvalidBody


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def json_body(request: Request) -> Any:
    """The body as JSON: 415 unless the client says it is JSON, 422 when it is not.

    A browser sends `text/plain` or a form from any site without asking first (no CORS
    preflight); insisting on `application/json` means another site cannot make a visitor's
    browser log in or write on its behalf."""
    if not is_json(request.headers.get("content-type", "")):
        raise HTTPException(415, "Content-Type must be application/json")
    try:
        return await request.json()
    except ValueError:
        raise InvalidBody("body", "not valid JSON") from None
