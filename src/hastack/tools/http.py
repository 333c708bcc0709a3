"""One shared HTTP client for the plain-HTTP APIs of the stack (etcd, Patroni).

httpx.get() builds a new client, with an SSL context, per call (~0.1 s here); a shared client
costs ~3 ms a request, which matters for probes every 250 ms. httpx.Client is thread-safe.
"""

from __future__ import annotations

import httpx

_client: httpx.Client | None = None


def client() -> httpx.Client:
    global _client
    if _client is None:
        _client = httpx.Client(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            trust_env=False,
        )
    return _client
