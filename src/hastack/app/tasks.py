"""Ending the app's background tasks at shutdown without leaving a query's cancel request
half-sent: a task cancelled inside a query makes psycopg send PostgreSQL a cancel request
and wait for it (up to 5 s); closing the pools or exiting before then cuts that request
off. PgBouncer 1.18 (Debian 12's) dies of such a cut-off cancel ("bad client state: 0",
pgbouncer#801), dropping every client's connection until it is started again."""

from __future__ import annotations

import asyncio
import logging

LOG = logging.getLogger("hastack.app")
CANCEL_WAIT_S = 11.0
"""How long a cancelled task may take to end: psycopg (3.3) waits up to 5 s for its cancel
request, then up to 5 s for the query to end."""


async def stop_task(task: asyncio.Task[None], grace_s: float = 0.0) -> None:
    """Let `task` end by itself within `grace_s` (one that watches a closing event), else
    cancel it; either way wait until it has ended (bounded), so its cancel request, if it
    sent one, is answered before the caller closes connections."""
    if grace_s > 0:
        await asyncio.wait({task}, timeout=grace_s)
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
    if task.done() and not task.cancelled() and task.exception() is not None:
        LOG.warning("background task %s had failed", task.get_name(), exc_info=task.exception())
