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
_verifying_clients: dict[str | ClientCert, httpx.Client] = {}
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
    return _verifying_client(ca)


def tls_client(identity: ClientCert) -> httpx.Client:
    """A shared client that verifies the server against `identity.ca` and presents
    `identity.cert`."""
    return _verifying_client(identity)


def _verifying_client(trust: str | ClientCert) -> httpx.Client:
    """One shared client per CA (a path) or client identity; its files are read once, when
    the client is first made."""
    with _lock:
        found = _verifying_clients.get(trust)
        if found is None:
            ca = trust if isinstance(trust, str) else trust.ca
            context = ssl.create_default_context(cafile=ca)
            if isinstance(trust, ClientCert):
                context.load_cert_chain(trust.cert, trust.key)
            found = _verifying_clients[trust] = _shared_client(verify=context)
        return found


def _shared_client(verify: ssl.SSLContext | bool) -> httpx.Client:
    return httpx.Client(
        verify=verify,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        trust_env=False,
    )
