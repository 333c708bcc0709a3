"""API tokens: random, shown once, stored as a SHA-256 hash (no web framework needed, so
the CLI can issue them)."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "hst_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256: tokens are random 256-bit values, so a slow hash would add nothing."""
    return hashlib.sha256(token.encode()).hexdigest()
