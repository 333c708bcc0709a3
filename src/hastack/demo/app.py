"""The demo app: a small multi-tenant work-order service on hastack's app tier.

Every request names its site in the tenant header (default X-Site-ID); the user must be
allowed that site (403 otherwise), and row-level security enforces it again in PostgreSQL.
Run as `uvicorn --factory hastack.demo.app:build` with the environment `hastack env` prints.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hastack.app import (
    Principal,
    SignatureError,
    create_app,
    services_of,
    sign_url,
    tenant_id,
    verify_url,
)
from hastack.app.auth import SESSION_COOKIE
from hastack.app.body import json_body
from hastack.app.factory import Services

LOG = logging.getLogger("hastack.demo")

STATUSES = ("open", "in_progress", "done", "cancelled")
TRANSITIONS = {
    "open": {"in_progress", "cancelled"},
    "in_progress": {"done", "open", "cancelled"},
    "done": set(),
    "cancelled": set(),
}
PAGE_MAX = 100
PARTITION_CHECK_S = 6 * 3600
LAST_WRITE_COOKIE = "hastack_lw"


class NewWorkOrder(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    priority: int = Field(default=3, ge=1, le=5)


class StatusChange(BaseModel):
    status: Literal["open", "in_progress", "done", "cancelled"]


class Import(BaseModel):
    items: list[NewWorkOrder] = Field(min_length=1, max_length=500)


class Login(BaseModel):
    # Bounded: the name becomes a rate-limit key in Redis (hashed, but still parsed).
    user: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=128)


async def _json(request: Request) -> Any:
    return await json_body(request)


async def _principal(request: Request) -> tuple[Services, Principal]:
    services = services_of(request.app)
    principal = await services.auth.require(request)
    await services.limiter.enforce(request, "authenticated", f"user:{principal.user_id}")
    return services, principal


async def _tenant(request: Request) -> tuple[Services, Principal, int]:
    services, principal = await _principal(request)
    return services, principal, tenant_id(request, principal, services.settings.tenant_header)


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("id", "site_id", "title", "status", "priority", "created_at", "updated_at")
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in zip(keys, row, strict=True)
    }


def _wrote(response: Response) -> Response:
    """Read-your-writes: the client's next reads go to the primary for a few seconds. A
    cookie, so it holds whichever instance serves the next request (clients that drop cookies
    may read from a replica that has not replayed their write yet)."""
    response.set_cookie(LAST_WRITE_COOKIE, str(int(time.time())), httponly=True, secure=True)
    return response


def _after_own_write(request: Request, services: Services) -> bool:
    try:
        written = int(request.cookies.get(LAST_WRITE_COOKIE, "0"))
    except ValueError:
        return False
    return time.time() - written < services.settings.read_your_writes_s


async def login(request: Request) -> Response:
    services = services_of(request.app)
    body = Login.model_validate(await _json(request))
    await services.limiter.enforce(request, "login", f"login:{body.user}")
    principal, cookie = await services.auth.login(body.user, body.token)
    response = JSONResponse({"user": principal.name, "sites": sorted(principal.sites)})
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, secure=True, samesite="strict")
    return response


async def logout(request: Request) -> Response:
    services, principal = await _principal(request)
    await services.auth.logout(principal)
    response = JSONResponse({"logged_out": True})
    response.delete_cookie(SESSION_COOKIE)
    return response


async def whoami(request: Request) -> Response:
    """The whole request path without a query: token, rate-limit tier, tenant check (what
    `hastack bench http` weighs against a bare endpoint)."""
    _services, principal, site = await _tenant(request)
    return JSONResponse({"user": principal.name, "site": site})


async def list_sites(request: Request) -> Response:
    services, principal = await _principal(request)
    rows = await services.db.fetch(
        "SELECT id, name FROM sites WHERE id = ANY(%s) ORDER BY id",
        (sorted(principal.sites),),
        readonly=True,
    )
    return JSONResponse({"sites": [{"id": r[0], "name": r[1]} for r in rows]})


LIST_SQL = "SELECT * FROM work_orders_page(%(status)s, %(before)s, %(limit)s)"
"""A function, so the server connection keeps its plan (migration 004)."""


async def list_work_orders(request: Request) -> Response:
    services, _user, site = await _tenant(request)
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
    try:
        limit = min(PAGE_MAX, max(1, int(q.get("limit", "20"))))
        before = int(q["before"]) if "before" in q else None
    except ValueError:
        raise HTTPException(422, "limit and before must be whole numbers") from None
    found = await services.db.fetch(
        LIST_SQL,
        {"status": status, "before": before, "limit": limit},
        site_id=site,
        readonly=True,
        primary=_after_own_write(request, services),
    )
    rows = [_row(r) for r in found]
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return JSONResponse({"items": rows, "next_before": next_before})


async def create_work_order(request: Request) -> Response:
    services, _user, site = await _tenant(request)
    body = NewWorkOrder.model_validate(await _json(request))
    (row,) = await services.db.fetch(
        "INSERT INTO work_orders (site_id, title, priority) VALUES (%s, %s, %s) "
        "RETURNING id, site_id, title, status, priority, created_at, updated_at",
        (site, body.title, body.priority),
        site_id=site,
    )
    await services.cache.invalidate(f"summary:{site}")
    return _wrote(JSONResponse(_row(row), status_code=201))


async def import_work_orders(request: Request) -> Response:
    """Bulk creation: the heavy-write tier applies."""
    services, principal, site = await _tenant(request)
    await services.limiter.enforce(request, "heavy_write", f"user:{principal.user_id}")
    body = Import.model_validate(await _json(request))
    async with services.db.transaction(site) as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO work_orders (site_id, title, priority) VALUES (%s, %s, %s)",
            [(site, item.title, item.priority) for item in body.items],
        )
    await services.cache.invalidate(f"summary:{site}")
    return _wrote(JSONResponse({"imported": len(body.items)}, status_code=201))


def _work_order_id(request: Request) -> int:
    try:
        return int(request.path_params["id"])
    except ValueError:
        raise HTTPException(404, "no such work order") from None


async def get_work_order(request: Request) -> Response:
    services, _user, site = await _tenant(request)
    found = await services.db.fetch(
        "SELECT id, site_id, title, status, priority, created_at, updated_at "
        "FROM work_orders WHERE id = %s",
        (_work_order_id(request),),
        site_id=site,
        readonly=True,
        primary=_after_own_write(request, services),
    )
    if not found:
        raise HTTPException(404, "no such work order")
    return JSONResponse(_row(found[0]))


async def change_status(request: Request) -> Response:
    services, _user, site = await _tenant(request)
    body = StatusChange.model_validate(await _json(request))
    order_id = _work_order_id(request)
    async with services.db.transaction(site) as conn:
        cur = await conn.execute(
            "SELECT status FROM work_orders WHERE id = %s FOR UPDATE", (order_id,)
        )
        current = await cur.fetchone()
        if current is None:
            raise HTTPException(404, "no such work order")
        if body.status not in TRANSITIONS[current[0]]:
            raise HTTPException(409, f"cannot go from {current[0]} to {body.status}")
        cur = await conn.execute(
            "UPDATE work_orders SET status = %s, updated_at = now() WHERE id = %s "
            "RETURNING id, site_id, title, status, priority, created_at, updated_at",
            (body.status, order_id),
        )
        row = await cur.fetchone()
    assert row is not None
    await services.cache.invalidate(f"summary:{site}")
    return _wrote(JSONResponse(_row(row)))


async def summary(request: Request) -> Response:
    """A report from the replicas (cached 10 s in Redis; straight from the database when
    Redis is down)."""
    services, _user, site = await _tenant(request)

    async def load() -> dict[str, Any]:
        rows = await services.db.fetch(
            "SELECT status, count(*) FROM work_orders GROUP BY status ORDER BY status",
            site_id=site,
            readonly=True,
        )
        return {"site_id": site, "by_status": {r[0]: r[1] for r in rows}}

    return JSONResponse(await services.cache.get_or_load(f"summary:{site}", load, ttl_s=10))


async def report_link(request: Request) -> Response:
    services, _user, site = await _tenant(request)
    path = f"/files/site-{site}-work-orders.csv"
    return JSONResponse({"url": sign_url(services.settings.url_key, path, ttl_s=300)})


async def download(request: Request) -> Response:
    """A protected download: only a valid, unexpired signed URL opens it (no login)."""
    services = services_of(request.app)
    try:
        path = verify_url(
            services.settings.url_keys(), str(request.url.path) + "?" + request.url.query
        )
    except SignatureError as exc:
        raise HTTPException(403, str(exc)) from None
    site = int(path.split("site-")[1].split("-")[0])
    rows = await services.db.fetch(
        "SELECT id, title, status, priority, created_at FROM work_orders ORDER BY id",
        site_id=site,
        readonly=True,
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "title", "status", "priority", "created_at"])
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv")


async def _keep_partitions_ahead(services: Services) -> None:
    """Partition maintenance: make sure next months' partitions exist, now and every 6 h."""
    while True:
        try:
            async with services.db.transaction() as conn:
                cur = await conn.execute("SELECT work_orders_ensure_partitions(3)")
                row = await cur.fetchone()
            if row and row[0]:
                LOG.info("created %s work_orders partitions", row[0])
        except Exception as exc:
            LOG.warning("partition maintenance failed: %s", exc)
        await asyncio.sleep(PARTITION_CHECK_S)


ROUTES = [
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/whoami", whoami),
    Route("/sites", list_sites),
    Route("/work-orders", list_work_orders),
    Route("/work-orders", create_work_order, methods=["POST"]),
    Route("/work-orders/import", import_work_orders, methods=["POST"]),
    Route("/work-orders/{id}", get_work_order),
    Route("/work-orders/{id}", change_status, methods=["PATCH"]),
    Route("/reports/summary", summary),
    Route("/reports/link", report_link, methods=["POST"]),
    Route("/files/{name}", download),
]


def build() -> Starlette:
    """The ASGI app (a factory: settings come from the environment at start)."""
    return create_app(ROUTES, background=[_keep_partitions_ahead])
