"""The drill workload: writers that commit uniquely identified rows and bank transfers, and a
reader on the replicas. Every acknowledged commit and every error is recorded with its time.

Writers never retry an operation: on any error they reconnect and use a new id, so an id is
acknowledged at most once. No statement_timeout and no query cancel: in synchronous mode a
cancelled wait for the standby returns success with only a WARNING, a false acknowledgement.
A commit that does come back with that warning is recorded as a failure, not an ack.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from hastack.drills.events import Ack, Failure, History

WRITE_SQL = (
    "INSERT INTO hastack_drill_writes (id, writer) VALUES (%s, %s) "
    "RETURNING inet_server_addr()::text"
)
RECONNECT_PAUSE_S = 0.05
ACCOUNTS = 100
INITIAL_BALANCE = 1000

# TCP-level protection only: keepalives notice a dead peer, tcp_user_timeout unacknowledged
# sends. prepare_threshold=None: PgBouncer's transaction pooling cannot keep prepared
# statements.
CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 2,
    "keepalives": 1,
    "keepalives_idle": 1,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 3000,
    "prepare_threshold": None,
    "autocommit": True,
}

FALSE_ACK_MARKERS = ("canceling wait for synchronous replication", "committed locally")


@dataclass(frozen=True)
class Targets:
    url: str
    direct: str
    ro: str
    pinned: str | None
    """A DSN straight to the primary at the start (a client with a stale route)."""
    node_by_address: dict[str, str]
    login: Callable[[], tuple[str, str]] | None = None
    """The application login and password as the stack stores them now: each new connection
    uses them, as an application restarted with `hastack env`'s values would (a rotation of
    app_password retires the login the drill started with)."""


def node_name(targets: Targets, address: object) -> str | None:
    text = str(address or "").split("/")[0]
    return targets.node_by_address.get(text)


class _Worker(threading.Thread):
    def __init__(
        self,
        name: str,
        dsn: str,
        history: History,
        stop: threading.Event,
        login: Callable[[], tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(name=f"drill-{name}", daemon=True)
        self.writer = name
        self.dsn = dsn
        self.login = login
        self.history = history
        self.stop_event = stop
        self.conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self.warned = False

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        credentials: dict[str, Any] = {}
        if self.login is not None:
            user, password = self.login()
            credentials = {"user": user, "password": password}
        conn = psycopg.connect(self.dsn, **CONNECT_ARGS, **credentials)
        conn.add_notice_handler(self._notice)
        return conn

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        text = f"{diag.message_primary or ''} {diag.message_detail or ''}".lower()
        if any(marker in text for marker in FALSE_ACK_MARKERS):
            self.warned = True

    def failure(self, op_id: int | None, exc: BaseException) -> None:
        sqlstate = getattr(exc, "sqlstate", None)
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        self.history.fail(Failure(self.writer, op_id, time.monotonic(), sqlstate, message))

    def drop_connection(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def unblock(self) -> None:
        """Shut the socket of a commit that hangs past the drill (never a query cancel)."""
        conn = self.conn
        if conn is None:
            return
        try:
            with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):
            pass

    def run(self) -> None:
        while not self.stop_event.is_set():
            if self.conn is None:
                try:
                    self.conn = self.connect()
                except psycopg.Error as exc:
                    self.failure(None, exc)
                    time.sleep(RECONNECT_PAUSE_S)
                    continue
            try:
                self.step(self.conn)
            except psycopg.Error as exc:
                self.on_error(exc)
                self.drop_connection()
                time.sleep(RECONNECT_PAUSE_S)
        self.drop_connection()

    def step(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def on_error(self, exc: psycopg.Error) -> None:
        self.failure(None, exc)


class Writer(_Worker):
    """Single-row autocommit inserts, as fast as `interval_s` allows."""

    def __init__(
        self,
        name: str,
        dsn: str,
        history: History,
        stop: threading.Event,
        ids: Callable[[], int],
        targets: Targets,
        interval_s: float,
    ) -> None:
        super().__init__(name, dsn, history, stop, targets.login)
        self.ids = ids
        self.targets = targets
        self.interval_s = interval_s
        self.current: int | None = None

    def step(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """One operation with a new id; acknowledged only when the commit returned without a
        "committed locally" warning (a cancelled wait for the standby)."""
        op_id = self.current = self.ids()
        self.warned = False
        t0 = time.monotonic()
        row = self.write(conn, op_id)
        t1 = time.monotonic()
        if self.warned:
            reason = "false acknowledgement: committed locally only"
            self.history.fail(Failure(self.writer, op_id, t1, None, reason))
        else:
            node = node_name(self.targets, row[0] if row else None)
            self.history.ack(Ack(self.writer, op_id, t0, t1, node))
        self.current = None
        time.sleep(self.interval_s)

    def write(
        self, conn: psycopg.Connection[tuple[Any, ...]], op_id: int
    ) -> tuple[Any, ...] | None:
        """The operation itself; returns a row whose first column is the server address."""
        return conn.execute(WRITE_SQL, (op_id, self.writer)).fetchone()

    def on_error(self, exc: psycopg.Error) -> None:
        self.failure(self.current, exc)
        self.current = None


class TransferWriter(Writer):
    """Bank transfers between random accounts: the total balance must never change."""

    def write(
        self, conn: psycopg.Connection[tuple[Any, ...]], op_id: int
    ) -> tuple[Any, ...] | None:
        src, dst = random.sample(range(1, ACCOUNTS + 1), 2)
        amount = random.randint(1, 50)
        with conn.transaction():
            conn.execute(
                "UPDATE hastack_drill_accounts SET balance = balance - %s WHERE id = %s",
                (amount, src),
            )
            conn.execute(
                "UPDATE hastack_drill_accounts SET balance = balance + %s WHERE id = %s",
                (amount, dst),
            )
            return conn.execute(
                "INSERT INTO hastack_drill_transfers (id, src, dst, amount) "
                "VALUES (%s, %s, %s, %s) RETURNING inet_server_addr()::text",
                (op_id, src, dst, amount),
            ).fetchone()


class Reader(_Worker):
    """Reads on DATABASE_URL_RO; only counted (reads are not part of the verdict)."""

    def step(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        conn.execute("SELECT count(*) FROM hastack_drill_writes").fetchone()
        self.history.read(True)
        time.sleep(0.05)

    def on_error(self, exc: psycopg.Error) -> None:
        self.history.read(False)


ALL_WORKERS = ("url", "direct", "transfer", "ro", "pinned")
CANARY_WORKERS = ("url", "pinned")
"""What a web drill runs beside its HTTP load: enough to see a second primary acknowledge
(the pinned writer reaches the old primary directly) without stealing the HTTP tier's CPU."""


class Workload:
    """Starts and stops every worker of a drill."""

    def __init__(
        self,
        targets: Targets,
        history: History,
        interval_s: float = 0.01,
        workers: tuple[str, ...] = ALL_WORKERS,
    ) -> None:
        self.stop_event = threading.Event()
        counter = itertools.count(1)
        lock = threading.Lock()

        def next_id() -> int:
            with lock:
                return next(counter)

        args = (history, self.stop_event, next_id, targets, interval_s)
        make: dict[str, Callable[[], _Worker]] = {
            "url": lambda: Writer("url", targets.url, *args),
            "direct": lambda: Writer("direct", targets.direct, *args),
            "transfer": lambda: TransferWriter("transfer", targets.url, *args),
            "ro": lambda: Reader("ro", targets.ro, history, self.stop_event, targets.login),
            "pinned": lambda: Writer("pinned", targets.pinned or "", *args),
        }
        self.workers: list[_Worker] = [
            make[name]() for name in workers if name != "pinned" or targets.pinned
        ]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout_s: float = 15.0) -> list[str]:
        """Stop every worker; a commit still hanging after `timeout_s` has its socket shut.
        Returns the names of workers that had to be unblocked."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        stuck = [w for w in self.workers if w.is_alive()]
        for worker in stuck:
            worker.unblock()
            worker.join(5)
        return [w.writer for w in stuck]
