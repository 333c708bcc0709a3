"""Where the dashboard's figures come from, read as the monitoring user: Patroni's /cluster
(the live topology: read at every refresh, so a new leader shows within one), Prometheus
(everything scraped), Alertmanager (active alerts), and two files root writes for it (the
watcher's latest decisions, the drill reports). Every source may fail on its own: its part
of the page says so and the rest still shows."""

from __future__ import annotations

import json
import os
import re
import ssl
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

MAX_REPORT_BYTES = 4 * 1024 * 1024
REPORT_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}-[a-z0-9-]{1,64}\.(json|html)$")
"""A drill report's file name (`20261128T072049-node-loss.json`): nothing else is served."""


@dataclass(frozen=True)
class DashboardConfig:
    stack: str
    host: str
    port: int
    cert: str
    key: str
    ca: str
    user: str
    password_file: str
    prometheus_url: str
    alertmanager_url: str
    patroni_urls: list[str]
    decisions_file: str
    drills_dir: str
    charts: list[dict[str, str]]

    @classmethod
    def load(cls, path: Path) -> DashboardConfig:
        return cls(**json.loads(path.read_text()))

    def password(self) -> str:
        """Read at each use: a rotated password works without a restart."""
        return Path(self.password_file).read_text().strip()


class Sources:
    def __init__(self, config: DashboardConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None
        self._reports: dict[str, dict[str, Any]] = {}
        """Drill reports already read: each is written once, atomically, and never changed."""

    @property
    def client(self) -> httpx.AsyncClient:
        """Made at first use (the stack's CA is read then)."""
        if self._client is None:
            tls = ssl.create_default_context(cafile=self.config.ca)
            self._client = httpx.AsyncClient(verify=tls, timeout=2.0)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _auth(self) -> tuple[str, str]:
        return (self.config.user, self.config.password())

    async def cluster(self) -> dict[str, Any]:
        """Patroni's view of the cluster from the first member that answers."""
        last: Exception | None = None
        for url in self.config.patroni_urls:
            try:
                answer = await self.client.get(f"{url}/cluster", timeout=1.0)
                answer.raise_for_status()
                data: dict[str, Any] = answer.json()
                return data
            except (httpx.HTTPError, ValueError) as exc:
                last = exc
        raise RuntimeError(f"no Patroni member answered ({type(last).__name__})")

    async def query(self, expr: str) -> list[dict[str, Any]]:
        answer = await self.client.get(
            f"{self.config.prometheus_url}/api/v1/query",
            params={"query": expr},
            auth=self._auth(),
        )
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    async def query_range(self, expr: str, seconds: int, step_s: int) -> list[dict[str, Any]]:
        end = time.time()
        answer = await self.client.get(
            f"{self.config.prometheus_url}/api/v1/query_range",
            params={"query": expr, "start": end - seconds, "end": end, "step": step_s},
            auth=self._auth(),
        )
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    async def alerts(self) -> list[dict[str, Any]]:
        answer = await self.client.get(
            f"{self.config.alertmanager_url}/api/v2/alerts",
            params={"active": "true", "silenced": "false", "inhibited": "false"},
            auth=self._auth(),
        )
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()
        return result

    def decisions(self) -> list[dict[str, Any]]:
        """The watcher's latest decisions, newest first."""
        path = Path(self.config.decisions_file)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return []
        return list(reversed(data)) if isinstance(data, list) else []

    def drill_reports(self, newest: int = 12) -> list[tuple[str, dict[str, Any]]]:
        """The newest drill reports (file name, content)."""
        folder = Path(self.config.drills_dir)
        try:
            names = sorted(
                (n for n in os.listdir(folder) if REPORT_NAME.match(n) and n.endswith(".json")),
                reverse=True,
            )[:newest]
        except FileNotFoundError:
            return []
        reports = []
        for name in names:
            if name not in self._reports:
                content = read_report(folder, name)
                try:
                    self._reports[name] = json.loads(content) if content is not None else {}
                except ValueError:
                    self._reports[name] = {}
            if self._reports[name]:
                reports.append((name, self._reports[name]))
        for gone in set(self._reports) - set(names):
            del self._reports[gone]
        return reports


def read_report(folder: Path, name: str) -> bytes | None:
    """A drill report's bytes, only for a report's file name and only a regular file (no
    link followed) of a sane size."""
    if not REPORT_NAME.match(name):
        return None
    try:
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
            return None
        return handle.read(MAX_REPORT_BYTES)
