"""Shared HTTP clients for the stack's APIs: one per CA for server-verified TLS (Patroni), one
per client certificate for the mutual-TLS ones (etcd), one for everything else.

httpx.get() builds a new client, with an SSL context, per call (~0.1 s here); a shared client
costs ~3 ms a request, which matters for probes every 250 ms. httpx.Client is thread-safe.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass

import httpx

_client: httpx.Client | None = None
_tls_clients: dict[ClientCert, httpx.Client] = {}
_ca_clients: dict[str, httpx.Client] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ClientCert:
    """Who we are to a mutual-TLS API, and the CA we trust it through."""

    ca: str
    cert: str
    key: str


def client() -> httpx.Client:
    global _client
    if _client is None:
        _client = _shared_client(verify=True)
    return _client


def ca_client(ca: str) -> httpx.Client:
    """A shared client that verifies the server (by address or name) against `ca`."""
    with _lock:
        found = _ca_clients.get(ca)
        if found is None:
            found = _ca_clients[ca] = _shared_client(verify=ssl.create_default_context(cafile=ca))
        return found


def tls_client(identity: ClientCert) -> httpx.Client:
    """A shared client that verifies the server against `identity.ca` and presents
    `identity.cert`. The files are read once, when the client is first made."""
    with _lock:
        found = _tls_clients.get(identity)
        if found is None:
            context = ssl.create_default_context(cafile=identity.ca)
            context.load_cert_chain(identity.cert, identity.key)
            found = _tls_clients[identity] = _shared_client(verify=context)
        return found


def _shared_client(verify: ssl.SSLContext | bool) -> httpx.Client:
    return httpx.Client(
        verify=verify,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        trust_env=False,
    )
