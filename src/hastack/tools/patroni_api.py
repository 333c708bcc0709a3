"""Patroni's REST API: cluster view, member state, dynamic configuration."""

from __future__ import annotations

from typing import Any

import httpx

from hastack.errors import Unavailable
from hastack.tools.http import ca_client

DEFAULT_TIMEOUT_S = 2.0


class PatroniUnavailable(Unavailable):
    pass


class PatroniClient:
    """One node's Patroni REST API."""

    def __init__(
        self,
        address: str,
        port: int,
        ca: str,
        auth: tuple[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        # HTTPS only, Patroni's certificate verified against the stack's CA: the REST
        # password never crosses a link in clear.
        self.base = f"https://{address}:{port}"
        self.ca = ca
        self.auth = httpx.BasicAuth(*auth) if auth else None
        self.timeout_s = timeout_s

    def _client(self) -> httpx.Client:
        try:
            return ca_client(self.ca)
        except OSError:  # no CA yet: the stack was never brought up
            raise PatroniUnavailable(f"{self.base}: no CA at {self.ca}", "hastack up") from None

    def _get(self, path: str) -> httpx.Response:
        client = self._client()
        try:
            return client.get(f"{self.base}{path}", timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise PatroniUnavailable(f"{self.base}{path}: {type(exc).__name__}") from None

    def member(self) -> dict[str, Any]:
        """GET /patroni: this member's role, state, timeline and WAL positions.

        Patroni answers 503 when PostgreSQL is not running but still sends the body."""
        data: dict[str, Any] = self._get("/patroni").json()
        return data

    def cluster(self) -> dict[str, Any]:
        """GET /cluster: every member as this node sees it (may be stale after a partition)."""
        data: dict[str, Any] = self._get("/cluster").json()
        return data

    def config(self) -> dict[str, Any]:
        """GET /config: the dynamic configuration stored in the DCS."""
        data: dict[str, Any] = self._get("/config").json()
        return data

    def _post(self, path: str, body: dict[str, Any], timeout_s: float) -> tuple[int, str]:
        if self.auth is None:
            raise PatroniUnavailable(f"{path} needs the REST API credentials")
        client = self._client()
        try:
            response = client.post(
                f"{self.base}{path}", json=body, auth=self.auth, timeout=timeout_s
            )
        except httpx.HTTPError as exc:
            raise PatroniUnavailable(f"{self.base}{path}: {type(exc).__name__}") from None
        return response.status_code, response.text.strip()

    def switchover(
        self, leader: str, candidate: str | None, scheduled_at: str | None = None
    ) -> tuple[int, str]:
        """POST /switchover. 200 when done (Patroni polls the outcome for up to ~20 s),
        202 when scheduled, 4xx/5xx with Patroni's reason otherwise."""
        body: dict[str, Any] = {"leader": leader}
        if candidate:
            body["candidate"] = candidate
        if scheduled_at:
            body["scheduled_at"] = scheduled_at
        return self._post("/switchover", body, timeout_s=30)

    def failover(self, candidate: str) -> tuple[int, str]:
        """POST /failover: promote `candidate` whatever the leader's state."""
        return self._post("/failover", {"candidate": candidate}, timeout_s=30)

    def restart(self) -> tuple[int, str]:
        """POST /restart: restart this member's PostgreSQL in place (a setting that needs a
        restart applies); the leader keeps its key. 200 when done."""
        return self._post("/restart", {}, timeout_s=120)

    def reinitialize(self) -> tuple[int, str]:
        """POST /reinitialize on this (replica) node: wipe and clone it again."""
        return self._post("/reinitialize", {"force": True}, timeout_s=10)

    def patch_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        try:
            if self.auth is None:
                raise PatroniUnavailable("changing the config needs the REST API credentials")
            response = ca_client(self.ca).patch(
                f"{self.base}/config", json=changes, auth=self.auth, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise PatroniUnavailable(f"{self.base}/config: {type(exc).__name__}") from None
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data
