"""Request ids: taken from X-Request-ID (or made), echoed back, available to logs."""

from __future__ import annotations

import contextvars
import re
import secrets

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str:
    return REQUEST_ID.get()


def request_id_from(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    """The client's request id when it is sane (letters, digits, `._:-`, at most 128), else a
    new one."""
    incoming = next((v for k, v in headers if k == name), b"").decode("latin-1")
    return incoming if _VALID.match(incoming) else secrets.token_hex(16)
