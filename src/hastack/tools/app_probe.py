"""An app instance's readiness endpoint."""

from __future__ import annotations

import httpx

from hastack.tools.http import client


def ready(url: str, timeout_s: float = 1.0) -> bool:
    """The endpoint answers 200 (ready, or degraded but serving)."""
    try:
        return client().get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False
