"""One secret, one key per purpose: a session cookie's MAC can never be replayed as a signed
download URL (or the other way round), and each purpose's key is derived, not reused."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SESSIONS = "sessions"
SIGNED_URLS = "signed-urls"

SESSION_TTL_S = 24 * 3600
"""A session's life; also how long a rotated-out key keeps verifying by default, so that no
one is signed out by a rotation."""


def derive_key(secret: str, purpose: str) -> str:
    """HKDF-SHA256 of the app secret for one purpose (hex)."""
    if not secret:
        raise ValueError("the app secret is empty: run the app with `hastack env`'s environment")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"hastack {purpose}".encode())
    return hkdf.derive(secret.encode()).hex()
