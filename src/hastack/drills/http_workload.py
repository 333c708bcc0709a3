"""HTTP load for web-tier drills: clients through HAProxy (HTTPS) creating and listing work
orders with an API token, every response recorded with its time and status; HAProxy's view of
each instance; and optional volume load (wrk) counting non-2xx answers."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import httpx

from hastack.drills.events import Ack, Failure, History
from hastack.errors import Unavailable
from hastack.runtime.stack import Stack
from hastack.spec.names import APP_BACKEND, LOAD_TEST_HEADER

NO_DB_CLIENT = "http-nodb"
"""The client whose requests need no database (`/whoami`)."""


@dataclass(frozen=True)
class HttpTarget:
    base_url: str
    ca_file: str
    token: str
    site_id: int
    load_token: str
    tenant_header: str = "X-Site-ID"

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            self.tenant_header: str(self.site_id),
            LOAD_TEST_HEADER: self.load_token,
        }


class _Client(threading.Thread):
    """One HTTP/1.1 keep-alive connection (like a browser tab or a service client). Every
    request is new: never retried by us (HAProxy may retry safe methods)."""

    def __init__(
        self,
        name: str,
        target: HttpTarget,
        history: History,
        stop: threading.Event,
        write: bool,
        path: str = "/work-orders",
        params: dict[str, int] | None = None,
    ) -> None:
        super().__init__(name=f"http-{name}", daemon=True)
        self.writer = name
        self.target = target
        self.history = history
        self.stop_event = stop
        self.write = write
        self.path = path
        self.params = params
        self.seq = itertools.count(1)

    def run(self) -> None:
        with httpx.Client(
            base_url=self.target.base_url,
            verify=self.target.ca_file,
            headers=self.target.headers(),
            timeout=httpx.Timeout(10.0, connect=2.0),
        ) as client:
            while not self.stop_event.is_set():
                self._one(client)
                self.stop_event.wait(0.005)

    def _one(self, client: httpx.Client) -> None:
        n = next(self.seq)
        t0 = time.monotonic()
        try:
            if self.write:
                response = client.post(self.path, json={"title": f"drill {self.writer} {n}"})
            else:
                response = client.get(self.path, params=self.params)
        except httpx.HTTPError as exc:
            self.history.fail(
                Failure(self.writer, None, time.monotonic(), None, type(exc).__name__)
            )
            return
        t1 = time.monotonic()
        expected = 201 if self.write else 200
        if response.status_code != expected:
            retry = response.headers.get("Retry-After")
            # Retry-After is part of the answer's kind: a 503 that says when to come back is
            # load shed on purpose (the overload drill counts them).
            detail = f"HTTP {response.status_code}{f' Retry-After {retry}' if retry else ''}: "
            detail += _what(response)
            self.history.fail(Failure(self.writer, None, t1, str(response.status_code), detail))
            return
        op_id = int(response.json()["id"]) if self.write else n
        self.history.ack(Ack(self.writer, op_id, t0, t1, None))


class HttpWorkload:
    def __init__(
        self, target: HttpTarget, history: History, writers: int = 2, readers: int = 2
    ) -> None:
        self.stop_event = threading.Event()
        self.clients = [
            _Client(f"http-post{i}", target, history, self.stop_event, write=True)
            for i in range(1, writers + 1)
        ] + [
            _Client(
                f"http-get{i}", target, history, self.stop_event, write=False, params={"limit": 5}
            )
            for i in range(1, readers + 1)
        ]
        # A request that needs no database (token cached, rate-limit tier in Redis): a
        # database failover must not fail it.
        self.clients.append(
            _Client(NO_DB_CLIENT, target, history, self.stop_event, write=False, path="/whoami")
        )

    def start(self) -> None:
        for c in self.clients:
            c.start()

    def stop(self) -> None:
        self.stop_event.set()
        for c in self.clients:
            c.join(15)


class ServerWatch(threading.Thread):
    """HAProxy's view of each app instance every 100 ms; state changes become marks."""

    def __init__(self, stack: Stack, history: History) -> None:
        super().__init__(name="http-servers", daemon=True)
        self.haproxy = stack.haproxy()
        self.history = history
        self.stop_event = threading.Event()

    def run(self) -> None:
        last: dict[str, str] = {}
        while not self.stop_event.is_set():
            try:
                states = self.haproxy.server_states()
            except Unavailable:
                states = []
            for s in states:
                if s.backend == APP_BACKEND and last.get(s.server) != s.status:
                    self.history.mark("haproxy", f"{s.server}: {s.status}", node=s.server)
                    last[s.server] = s.status
            self.stop_event.wait(0.1)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


def _what(response: httpx.Response) -> str:
    """The app's error message without its request id (so that errors group by kind), or the
    start of a body that is not the app's JSON (HAProxy's own pages)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:120]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text[:120]
