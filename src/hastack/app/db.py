"""Database access for apps behind hastack: a read-write pool (DATABASE_URL), a read-only
pool (DATABASE_URL_RO) used only while the replicas are fresh, and tenant-scoped
transactions (row-level security keyed by `app.current_site_id`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.abc import Params
from psycopg_pool import AsyncConnectionPool

from hastack.app.metrics import AppMetrics
from hastack.app.settings import AppSettings
from hastack.app.tasks import stop_task
from hastack.app.tracing import Tracing

LOG = logging.getLogger("hastack.db")
CLOSE_WAIT_S = 3.0
"""How long close() lets the replica-lag watcher finish its query (it asks every second)."""

AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]

# Bytes not yet replayed -> 0 lag; otherwise time since the last replayed commit. (Time alone
# grows while the primary is idle, which would wrongly push reads to the primary.)
LAG_SQL = """
SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN 0
  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
END
"""


def make_pool(url: str, name: str, max_size: int) -> AsyncConnectionPool[AsyncConn]:
    return AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        name=name,
        open=False,
        timeout=5.0,
        # PgBouncer's transaction pooling cannot keep server-side prepared statements.
        # Autocommit: `transaction()` says BEGIN itself; `fetch` needs no BEGIN at all.
        kwargs={"prepare_threshold": None, "connect_timeout": 2, "autocommit": True},
    )


def tenant_setting(site_id: int | None) -> sql.Composed:
    """The transaction-local tenant setting row-level security reads ('' for no tenant)."""
    return sql.SQL("SELECT set_config('app.current_site_id', {}, true)").format(
        sql.Literal("" if site_id is None else str(site_id))
    )


def for_tenant(site_id: int | None, query: LiteralString | sql.Composable) -> sql.Composed:
    """`query` preceded by the tenant setting, as one message."""
    statement = sql.SQL(query) if isinstance(query, str) else query
    return sql.Composed([tenant_setting(site_id), sql.SQL("; "), statement])


async def fetch_for_tenant(
    conn: AsyncConn,
    site_id: int | None,
    query: LiteralString | sql.Composable,
    params: Params | None = None,
) -> list[tuple[Any, ...]]:
    """Run `for_tenant(site_id, query)` on an autocommit connection; the statement's rows.
    (A pipeline of the two statements did the same in one round trip, but psycopg's
    pipeline machinery cost ~0.2 ms of Python per call, more than the round trip saved.)"""
    cursor = psycopg.AsyncClientCursor(conn)
    async with cursor:
        await cursor.execute(for_tenant(site_id, query), params)
        cursor.nextset()
        return await cursor.fetchall()


def _operation(query: object) -> str:
    """The statement's verb (SELECT, INSERT ...) for its span; never its text or values."""
    if isinstance(query, str):
        verb = query.lstrip().split(None, 1)[:1]
        if verb and verb[0].isalpha():
            return verb[0].upper()
    return "statement"


class Database:
    def __init__(
        self,
        settings: AppSettings,
        metrics: AppMetrics,
        pool_size: int = 10,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tracing = tracing
        self.rw = make_pool(settings.database_url, "rw", pool_size)
        self.ro = (
            make_pool(settings.database_url_ro, "ro", pool_size)
            if settings.database_url_ro
            else None
        )
        self.replica_lag_s: float | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def open(self) -> None:
        await self.rw.open(wait=False)
        if self.ro is not None:
            await self.ro.open(wait=False)
            self._lag_task = asyncio.create_task(self._watch_lag())

    @property
    def is_open(self) -> bool:
        """The pools are open (they may still wait for a server: that is not this
        instance's failure)."""
        return not self.rw.closed

    async def stop_watching(self) -> None:
        """End the replica-lag watcher between two queries, never inside one: a task
        cancelled in a query makes psycopg send a cancel request, and PgBouncer 1.18
        (Debian 12's) dies of a cancel whose client is gone before the server answered it
        ("bad client state: 0", pgbouncer#801), taking every client's connection with it."""
        self._closing.set()
        task, self._lag_task = self._lag_task, None
        if task is not None:
            await stop_task(task, CLOSE_WAIT_S)

    async def close(self) -> None:
        await self.stop_watching()
        await self.rw.close()
        if self.ro is not None:
            await self.ro.close()

    async def _watch_lag(self, every_s: float = 1.0) -> None:
        assert self.ro is not None
        while not self._closing.is_set():
            try:
                async with self.ro.connection(timeout=2) as conn:
                    row = await (await conn.execute(LAG_SQL)).fetchone()
                self.replica_lag_s = float(row[0]) if row else None
            except (psycopg.Error, OSError, TimeoutError) as exc:
                LOG.warning("replica lag unknown: %s", exc)
                self.replica_lag_s = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), every_s)

    def replicas_fresh(self) -> bool:
        lag = self.replica_lag_s
        return lag is not None and lag <= self.settings.replica_max_lag_s

    def pick(self, readonly: bool, primary: bool = False) -> AsyncConnectionPool[AsyncConn]:
        """Writes, and reads that must see the caller's own recent writes (`primary`), go to
        the primary; other reads to the replicas while they are fresh."""
        if primary or not readonly or self.ro is None or not self.replicas_fresh():
            return self.rw
        return self.ro

    @contextlib.asynccontextmanager
    async def transaction(
        self,
        site_id: int | None = None,
        *,
        readonly: bool = False,
        primary: bool = False,
    ) -> AsyncIterator[AsyncConn]:
        """A transaction scoped to one tenant: `app.current_site_id` is set for this
        transaction only (`set_config(..., true)`), so a pooled connection never carries
        one tenant's setting into another's request.

        Pipelined: BEGIN and the tenant setting leave with the first statement whose result
        is read, COMMIT with whatever is still unread: one round trip per result read inside
        the block, plus one (four before: each statement awaited). One statement: `fetch`.
        Errors of queued statements surface when their result is read or the block ends."""
        pool = self._routed(readonly, primary)
        with self._span("transaction", pool.name):
            async with pool.connection() as conn, conn.pipeline(), conn.transaction():
                await conn.execute(tenant_setting(site_id))
                yield conn

    async def fetch(
        self,
        query: LiteralString | sql.Composable,
        params: Params | None = None,
        *,
        site_id: int | None = None,
        readonly: bool = False,
        primary: bool = False,
    ) -> list[tuple[Any, ...]]:
        """One statement for one tenant, in one round trip and without BEGIN or COMMIT: the
        tenant setting and the statement travel as one simple-protocol message, so
        PostgreSQL runs both in one implicit transaction (the setting ends with it) and
        PgBouncer hands the server connection back right after. Parameters are bound by the
        client (psycopg's literal quoting); use %s or %(name)s placeholders as usual."""
        pool = self._routed(readonly, primary)
        with self._span(_operation(query), pool.name):
            async with pool.connection() as conn:
                return await fetch_for_tenant(conn, site_id, query, params)

    def _span(self, operation: str, pool: str) -> contextlib.AbstractContextManager[None]:
        if self.tracing is None:
            return contextlib.nullcontext()
        return self.tracing.database(operation, pool)

    def _routed(self, readonly: bool, primary: bool) -> AsyncConnectionPool[AsyncConn]:
        """`pick`, counted in the metrics."""
        pool = self.pick(readonly, primary)
        self.metrics.replica_routed.labels(pool.name).inc()
        return pool

    async def ping(self, timeout_s: float = 1.0) -> None:
        async with self.rw.connection(timeout=timeout_s) as conn:
            await conn.execute("SELECT 1")

    def collect(self) -> None:
        """Pool usage for /metrics."""
        for pool in (self.rw, self.ro):
            if pool is None:
                continue
            stats = pool.get_stats()
            size = stats.get("pool_size", 0)
            idle = stats.get("pool_available", 0)
            self.metrics.pool_connections.labels(pool.name, "idle").set(idle)
            self.metrics.pool_connections.labels(pool.name, "used").set(size - idle)
            self.metrics.pool_connections.labels(pool.name, "waiting").set(
                stats.get("requests_waiting", 0)
            )
