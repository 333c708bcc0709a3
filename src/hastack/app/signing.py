"""HMAC-signed, expiring URLs for protected downloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from urllib.parse import parse_qs, urlencode, urlsplit


class SignatureError(Exception):
    """Expired, tampered or missing signature."""


def _mac(secret: str, path: str, expires: int) -> str:
    digest = hmac.new(secret.encode(), f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_url(secret: str, path: str, ttl_s: int, now: float | None = None) -> str:
    """`path?expires=...&signature=...`, valid for `ttl_s` seconds."""
    if not secret:
        raise ValueError("a secret key is needed to sign URLs")
    expires = int((time.time() if now is None else now) + ttl_s)
    query = urlencode({"expires": expires, "signature": _mac(secret, path, expires)})
    return f"{path}?{query}"


def verify_url(secret: str | Sequence[str], url: str, now: float | None = None) -> str:
    """The signed path, or SignatureError saying why not. `secret` may be several keys (the
    signing key and those still accepted during a rotation): any of them verifies."""
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys or not all(keys):
        raise ValueError("a secret key is needed to verify URLs")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        expires = int(query["expires"][0])
        signature = query["signature"][0]
    except (KeyError, ValueError, IndexError):
        raise SignatureError("missing signature") from None
    if not any(hmac.compare_digest(signature, _mac(k, parts.path, expires)) for k in keys):
        raise SignatureError("bad signature")
    if (time.time() if now is None else now) > expires:
        raise SignatureError("link expired")
    return parts.path
