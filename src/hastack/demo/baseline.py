"""`hastack bench http`'s baseline for the database-backed request: the demo list's SELECT
from a bare Starlette route, on a pool built like the app's, autocommit (one round trip). No
middleware, no token, tenant check, rate limit or tenant transaction: the demo list is
compared against it to show what the app tier adds to a database round trip."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hastack.app.db import fetch_for_tenant, make_pool
from hastack.demo.app import LIST_SQL


@contextlib.asynccontextmanager
async def _pool(app: Starlette) -> AsyncIterator[None]:
    pool = make_pool(os.environ["DATABASE_URL_RO"], "ro", 10)
    await pool.open(wait=True)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


PARAMS = {"status": None, "before": None, "limit": 10}


async def list_rows(request: Request) -> JSONResponse:
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(LIST_SQL, PARAMS)
        rows = await cur.fetchall()
    return JSONResponse({"items": [{"id": r[0], "title": r[2]} for r in rows]})


async def list_rows_for_tenant(request: Request) -> JSONResponse:
    """The same for one tenant (`?site=N`), as `services.db.fetch` sends it: what the
    tenant setting adds, without the app tier."""
    site = int(request.query_params.get("site", "0"))
    async with request.app.state.pool.connection() as conn:
        rows = await fetch_for_tenant(conn, site, LIST_SQL, PARAMS)
    return JSONResponse({"items": [{"id": r[0], "title": r[2]} for r in rows]})


app = Starlette(
    routes=[Route("/", list_rows), Route("/tenant", list_rows_for_tenant)], lifespan=_pool
)
