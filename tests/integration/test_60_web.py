"""The web tier through HAProxy, for real: TLS, the demo app, tenancy, limits, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from hastack.app.db import Database
from hastack.app.metrics import AppMetrics
from hastack.app.settings import AppSettings
from hastack.runtime.apptier import app_servers
from hastack.runtime.bench_server import bench_haproxy
from hastack.spec.names import LOAD_TEST_HEADER
from tests.integration.conftest import Stack
from tests.integration.helpers import wait_until


@dataclass(frozen=True)
class User:
    name: str
    token: str
    site: int


def make_user(stack: Stack, name: str, site: str) -> User:
    result = stack.run("app", "token", "create", "--user", name, "--site", site, "--json")
    assert result.code == 0, result.err
    data = result.json()
    return User(name, data["token"], data["sites"][0])


@pytest.fixture(scope="module")
def web(stack: Stack) -> Iterator[httpx.Client]:
    secrets = stack.hs.secrets
    with httpx.Client(
        base_url=stack.plan.app_url,
        verify=str(stack.plan.paths.ca_cert),
        headers={LOAD_TEST_HEADER: secrets.load_test_token},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def alice(stack: Stack) -> User:
    return make_user(stack, "alice", "site-a")


@pytest.fixture(scope="module")
def bob(stack: Stack) -> User:
    return make_user(stack, "bob", "site-b")


def all_in_rotation(stack: Stack) -> bool:
    """Every instance UP in HAProxy: after a dependency comes back, HAProxy needs `rise`
    passing checks before it sends traffic again."""
    servers = app_servers(stack.hs)
    return len(servers) == len(stack.plan.app_instances) and all(s.up for s in servers.values())


def instance_readiness(url: str) -> str:
    """One app instance's readiness status, asked directly."""
    return str(httpx.get(f"{url}/health/ready").json()["status"])


def auth(user: User, site: int | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {user.token}"}
    headers["X-Site-ID"] = str(user.site if site is None else site)
    return headers


def test_status_shows_every_instance_ready_and_in_rotation(stack: Stack) -> None:
    code, status = stack.status()
    assert code == 0, status["problems"]
    assert [a["name"] for a in status["app"]] == ["app1", "app2"]
    assert all(a["ready"] and a["in_rotation"] for a in status["app"])
    env = stack.run("env", "--json").json()
    assert env["APP_URL"] == stack.plan.app_url


def test_http_redirects_to_https_and_tls_verifies_with_the_ca(
    stack: Stack, web: httpx.Client
) -> None:
    plain = httpx.get(
        f"http://{stack.plan.services_address}:{stack.plan.spec.http.http_port}/health/live?x=1",
        follow_redirects=False,
    )
    assert plain.status_code == 301
    assert plain.headers["location"] == f"{stack.plan.app_url}/health/live?x=1"
    named = httpx.get(f"{plain.url}", headers={"Host": "LocalHost:8080"}, follow_redirects=False)
    assert named.headers["location"].startswith(
        f"https://localhost:{stack.plan.spec.http.https_port}/"
    )
    forged = httpx.get(f"{plain.url}", headers={"Host": "evil.example"}, follow_redirects=False)
    assert forged.headers["location"] == f"{stack.plan.app_url}/health/live?x=1"
    ready = web.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.headers["strict-transport-security"].startswith("max-age=31536000")
    assert ready.headers["x-content-type-options"] == "nosniff"
    assert len(ready.headers["x-request-id"]) == 32
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.plan.app_url}/health/live")  # not trusted without the CA


def test_work_orders_round_trip(web: httpx.Client, alice: User) -> None:
    created = web.post(
        "/work-orders", json={"title": "fix the pump", "priority": 2}, headers=auth(alice)
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["site_id"] == alice.site and order["status"] == "open"
    cookies = created.cookies  # read-your-writes cookie
    listed = web.get("/work-orders", headers=auth(alice), cookies=cookies)
    assert order["id"] in [o["id"] for o in listed.json()["items"]]
    moved = web.patch(
        f"/work-orders/{order['id']}", json={"status": "in_progress"}, headers=auth(alice)
    )
    assert moved.status_code == 200 and moved.json()["status"] == "in_progress"
    done = web.patch(f"/work-orders/{order['id']}", json={"status": "done"}, headers=auth(alice))
    assert done.status_code == 200
    again = web.patch(f"/work-orders/{order['id']}", json={"status": "open"}, headers=auth(alice))
    assert again.status_code == 409
    summary = web.get("/reports/summary", headers=auth(alice))
    assert summary.status_code == 200 and summary.json()["site_id"] == alice.site


def test_a_request_in_a_callers_trace_is_traced_down_to_the_database(
    stack: Stack, web: httpx.Client, alice: User
) -> None:
    """The spec's `app.tracing` reaches the instances: HAProxy passes `traceparent` on, the
    instance continues the trace (kept: its parent was sampled), its database work is under
    it, the batch reaches the collector, and the access log line names the trace."""
    trace, parent = secrets.token_hex(16), secrets.token_hex(8)
    answer = web.get(
        "/work-orders", headers={**auth(alice), "traceparent": f"00-{trace}-{parent}-01"}
    )
    assert answer.status_code == 200, answer.text

    def traced() -> list[dict[str, Any]] | None:
        spans = [s for s in list(stack.traces.spans) if s["trace_id"] == trace]
        server = [s for s in spans if s["kind"] == 2]
        return spans if server and any(s["name"].startswith("db ") for s in spans) else None

    spans = wait_until(traced, timeout_s=20)
    server = next(s for s in spans if s["kind"] == 2)
    assert server["name"] == "GET /work-orders" and server["parent"] == parent
    assert server["service"] == "hastack-app"
    assert server["attributes"]["http.response.status_code"] == 200
    database = [s for s in spans if s["name"].startswith("db ")]
    assert all(d["parent"] == server["span_id"] for d in database), spans
    assert all(d["attributes"]["db.system"] == "postgresql" for d in database)

    def logged() -> bool:
        logs = [stack.plan.paths.program_log(i.name) for i in stack.plan.app_instances]
        return any(f'"trace_id":"{trace}"' in log.read_text() for log in logs)

    assert wait_until(logged, timeout_s=10)


def test_tenant_isolation(web: httpx.Client, alice: User, bob: User) -> None:
    order = web.post("/work-orders", json={"title": "alice only"}, headers=auth(alice)).json()
    forged = web.get("/work-orders", headers=auth(bob, site=alice.site))
    assert forged.status_code == 403 and "not allowed" in forged.json()["error"]
    missing = web.get("/work-orders", headers={"Authorization": f"Bearer {bob.token}"})
    assert missing.status_code == 403 and "missing X-Site-ID" in missing.json()["error"]
    bobs = web.get(
        "/work-orders?limit=100", headers=auth(bob), cookies={"hastack_lw": str(int(time.time()))}
    )
    assert order["id"] not in [o["id"] for o in bobs.json()["items"]]
    assert web.get(f"/work-orders/{order['id']}", headers=auth(bob)).status_code == 404


def test_row_level_security_holds_in_postgresql(stack: Stack, alice: User, bob: User) -> None:
    env = stack.run("env", "--json").json()
    with psycopg.connect(env["DATABASE_URL_DIRECT"]) as conn:
        conn.execute("SELECT set_config('app.current_site_id', %s, true)", (str(bob.site),))
        sites = {r[0] for r in conn.execute("SELECT DISTINCT site_id FROM work_orders")}
        assert sites <= {bob.site}
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM work_orders").fetchone() == (0,)  # no site set
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM work_orders_default")  # partitions only via the parent


def test_bad_input_gets_json_errors(web: httpx.Client, alice: User) -> None:
    not_json = web.post(
        "/work-orders",
        content=b"{nope",
        headers={**auth(alice), "content-type": "application/json"},
    )
    assert not_json.status_code == 422 and not_json.json()["fields"][0]["field"] == "body"
    bad_field = web.post("/work-orders", json={"title": ""}, headers=auth(alice))
    assert bad_field.status_code == 422 and bad_field.json()["fields"][0]["field"] == "title"
    big = web.post("/work-orders", content=b"x" * (1024 * 1024 + 1), headers=auth(alice))
    assert big.status_code == 413
    unknown = web.get("/no/such/route")
    assert unknown.status_code == 404 and unknown.json()["error"] == "Not Found"
    assert web.get("/work-orders").status_code == 401


def test_signed_download_links(web: httpx.Client, alice: User) -> None:
    link = web.post("/reports/link", headers=auth(alice)).json()["url"]
    assert web.get(link).status_code == 200
    tampered = link.replace(f"site-{alice.site}", f"site-{alice.site + 1000}")
    assert web.get(tampered).status_code == 403
    expired = link.split("expires=")[0] + "expires=1&" + link.split("&", 1)[1]
    assert web.get(expired).status_code == 403


def test_edge_rate_limit_answers_429_with_retry_after(stack: Stack) -> None:
    limit = stack.plan.spec.http.edge_rate_limit.requests
    with httpx.Client(verify=str(stack.plan.paths.ca_cert)) as client:
        codes = [
            client.get(f"{stack.plan.app_url}/health/live").status_code for _ in range(limit + 5)
        ]
        limited = client.get(f"{stack.plan.app_url}/health/live")
    assert codes.count(429) >= 5 and limited.status_code == 429
    assert limited.headers["retry-after"] == str(stack.plan.spec.http.edge_rate_limit.period_s)


def test_login_tier_limits_per_user(web: httpx.Client) -> None:
    """5 logins a minute per user name (fixed windows: a minute boundary may reset the count
    once during the test, hence the margin)."""
    user = f"limit-{time.monotonic_ns()}"
    responses = [web.post("/login", json={"user": user, "token": "wrong"}) for _ in range(12)]
    codes = [r.status_code for r in responses]
    assert codes[:5] == [401] * 5 and 429 in codes and codes.count(401) <= 10
    denied = responses[-1]
    assert denied.status_code == 429 and int(denied.headers["retry-after"]) > 0
    assert denied.headers["ratelimit-remaining"] == "0"
    assert denied.json()["error"] == "rate limit exceeded"


def test_the_database_unreachable_leaves_every_instance_in_rotation_degraded(
    stack: Stack, web: httpx.Client, alice: User
) -> None:
    """A shared dependency down fails for every instance at once: HAProxy must keep them all,
    so the routes that need no database keep answering and those that do answer 503 +
    Retry-After themselves (not HAProxy's own 503 for everything)."""
    sup = stack.hs.supervisor
    instances = stack.plan.app_instances
    # The watcher would start PgBouncer again after 2 s: keep it down on purpose, then let
    # the watcher bring it back.
    with stack.hs.hold(120, "test: PgBouncer down", scope=["pgbouncer:pgbouncer"]):
        sup.stop("pgbouncer:pgbouncer")
        wait_until(lambda: all(instance_readiness(i.url) == "degraded" for i in instances), 10)
        ready = httpx.get(f"{instances[0].url}/health/ready")
        assert ready.status_code == 200 and ready.json()["failing"] == ["database"]
        time.sleep(2 * stack.plan.spec.http.check.inter_ms / 1000 * stack.plan.spec.http.check.fall)
        assert all_in_rotation(stack)  # after more checks than it takes to mark one down
        assert web.get("/health/live").status_code == 200
        # The app waits for a pooled connection (its pool timeout, 5 s) before it gives up.
        needs_db = web.get("/work-orders", headers=auth(alice), timeout=20)
        assert needs_db.status_code == 503 and int(needs_db.headers["retry-after"]) >= 1
    wait_until(lambda: all(instance_readiness(i.url) == "ready" for i in instances), 15)
    wait_until(lambda: all_in_rotation(stack), 15)


def test_redis_down_leaves_the_app_serving_degraded(
    stack: Stack, web: httpx.Client, alice: User
) -> None:
    sup = stack.hs.supervisor
    instances = stack.plan.app_instances
    with stack.hs.hold(120, "test: Redis down", scope=["redis:redis"]):
        sup.stop("redis:redis")
        # Every instance notices on its own schedule, and HAProxy spreads requests over them:
        # wait until each one says so, not merely the instance that answered first.
        wait_until(lambda: all(instance_readiness(i.url) == "degraded" for i in instances), 10)
        ready = web.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["failing"] == ["redis"]
        assert (
            web.post("/work-orders", json={"title": "no redis"}, headers=auth(alice)).status_code
            == 201
        )
        assert web.get("/reports/summary", headers=auth(alice)).status_code == 200
    wait_until(lambda: all(instance_readiness(i.url) == "ready" for i in instances), 15)
    wait_until(lambda: all_in_rotation(stack), 15)


def test_rolling_restart_under_load_fails_no_request(
    stack: Stack, web: httpx.Client, alice: User
) -> None:
    failures: list[str] = []
    ok = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal ok
        while not stop.is_set():
            r = web.get("/work-orders?limit=1", headers=auth(alice))
            if r.status_code == 200:
                ok += 1
            else:
                failures.append(f"{r.status_code} {r.text[:80]}")

    thread = threading.Thread(target=load)
    thread.start()
    try:
        result = stack.run("app", "restart", "--rolling", "--json")
    finally:
        stop.set()
        thread.join()
    assert result.code == 0, result.err
    assert [r["name"] for r in result.json()["instances"]] == ["app1", "app2"]
    assert failures == [] and ok > 50


def test_secrets_do_not_leak_into_argv_or_supervisor_config(stack: Stack) -> None:
    secrets = stack.hs.secrets
    for proc in psutil.process_iter(["username", "cmdline"]):
        if proc.info["username"] == stack.plan.service_users["app"]:
            assert secrets.app_password not in " ".join(proc.info["cmdline"] or [])
    assert secrets.app_password not in stack.plan.paths.supervisor_config.read_text()


def test_the_app_sees_the_real_client_not_a_forged_forwarded_for(
    stack: Stack, web: httpx.Client
) -> None:
    """HAProxy drops the client's X-Forwarded-For and sends its own, from the one address
    the instances trust; the access log shows the address HAProxy saw."""
    request_id = f"xff-{time.monotonic_ns()}"
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-ID": request_id}
    assert web.get("/health/live", headers=headers).status_code == 200

    def logged() -> dict[str, object] | None:
        for instance in stack.plan.app_instances:
            for line in stack.plan.paths.program_log(instance.name).read_text().splitlines():
                if request_id in line:
                    return dict(json.loads(line))
        return None

    record = wait_until(logged, 5)
    assert record["client"] == "127.0.0.1"  # this test's own address, as HAProxy saw it


def test_app_metrics_are_not_served_at_the_edge(stack: Stack, web: httpx.Client) -> None:
    assert web.get("/metrics").status_code == 404
    instance = stack.plan.app_instances[0]
    assert "http_requests" in httpx.get(f"{instance.url}/metrics").text  # for Prometheus


def test_tokens_expire_and_can_be_revoked(stack: Stack, web: httpx.Client) -> None:
    created = stack.run("app", "token", "create", "--user", "leaver", "--site", "s1", "--json")
    assert created.code == 0, created.err
    issued = created.json()
    headers = {"Authorization": f"Bearer {issued['token']}", "X-Site-ID": str(issued["sites"][0])}
    assert web.get("/whoami", headers=headers).status_code == 200
    listed = stack.run("app", "token", "list", "--user", "leaver", "--json").json()
    assert [(t["token_id"], t["state"]) for t in listed] == [(issued["token_id"], "active")]
    assert issued["token"] not in json.dumps(listed)

    revoked = stack.run("app", "token", "revoke", str(issued["token_id"]), "--json")
    assert revoked.json() == {"revoked": 1}
    # Each instance caches a lookup for token_cache_s (30 s): revocation is seen within it.
    wait_until(lambda: web.get("/whoami", headers=headers).status_code == 401, 40, 1.0)
    listed = stack.run("app", "token", "list", "--user", "leaver", "--json").json()
    assert listed[0]["state"] == "revoked"

    # A token past its expiry is refused (never looked up before, so nothing is cached).
    fresh = stack.run("app", "token", "create", "--user", "leaver", "--site", "s1", "--json")
    token = fresh.json()
    with stack.hs.connect(stack.status()[1]["leader_key"]) as conn:
        conn.execute("SET ROLE app_owner")
        conn.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s",
            (token["token_id"],),
        )
    expired = {"Authorization": f"Bearer {token['token']}", "X-Site-ID": str(token["sites"][0])}
    assert web.get("/whoami", headers=expired).status_code == 401
    states = {t["token_id"]: t["state"] for t in stack.run("app", "token", "list", "--json").json()}
    assert states[token["token_id"]] == "expired"


def test_bench_http_measures_tls_with_a_throwaway_haproxy_that_leaves_nothing(
    stack: Stack,
) -> None:
    """The two frontends answer the same route, one plain, one TLS; afterwards no process of
    it is left and the watcher saw no orphan (it was held)."""
    with bench_haproxy(stack.hs) as (plain, tls):
        assert httpx.get(f"{plain}/health/live").json() == {"status": "live"}
        # The edge certificate names the stack's hostnames, not this scratch address: the
        # handshake is what is measured, not who the server is.
        assert httpx.get(f"{tls}/health/live", verify=False).json() == {"status": "live"}
    left = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and "hastack-bench-" in " ".join(p.info["cmdline"])
    ]
    assert left == []
    assert stack.status()[0] == 0


def test_one_round_trip_tenant_transactions_never_leak_a_tenant_through_pgbouncer(
    stack: Stack, alice: User, bob: User
) -> None:
    """Hundreds of one-round-trip transactions (`fetch`) and pipelined ones (`transaction`),
    24 at a time, for two tenants (and for none),
    through PgBouncer's transaction pooling, with failing transactions mixed in: each sees
    its own tenant's setting and rows only, and server connections did serve both tenants
    (so the test would see a setting carried from one transaction to the next)."""
    for user in (alice, bob):
        created = httpx.post(
            f"{stack.plan.app_url}/work-orders",
            json={"title": f"{user.name}'s isolation probe"},
            headers={**auth(user), LOAD_TEST_HEADER: stack.hs.secrets.load_test_token},
            verify=str(stack.plan.paths.ca_cert),
        )
        assert created.status_code == 201, created.text
    env = stack.run("env", "--json").json()
    probe = (
        "SELECT current_setting('app.current_site_id', true), pg_backend_pid(), "
        "coalesce(array_agg(DISTINCT site_id), '{}') FROM work_orders"
    )

    async def run() -> tuple[list[tuple[int | None, str, int, list[int]]], int]:
        db = Database(AppSettings(database_url=env["DATABASE_URL"]), AppMetrics(), pool_size=6)
        await db.open()
        seen: list[tuple[int | None, str, int, list[int]]] = []
        failed = 0
        # Four times the pool in flight: every connection always has the next transaction
        # waiting for it, without waits long enough to hit the pool's timeout.
        in_flight = asyncio.Semaphore(24)

        async def one(i: int) -> None:
            async with in_flight:
                await transact(i)

        async def transact(i: int) -> None:
            nonlocal failed
            site = (alice.site, bob.site, None)[i % 3]
            if i % 11 == 0:  # no tenant set at all: a setting left on the server shows here
                async with db.rw.connection() as conn:
                    row = await (await conn.execute(probe)).fetchone()
                assert row is not None and row[0] in ("", None), f"leaked: {row}"
                return
            if i % 7 == 0:  # an error inside a pipelined transaction leaves nothing behind
                with contextlib.suppress(psycopg.errors.DivisionByZero):
                    await db.fetch("SELECT 1 / 0", site_id=site)
                    raise AssertionError("division by zero was not reported")
                failed += 1
                return
            if i % 5 == 0:  # a result read inside the block, then a second statement
                async with db.transaction(site) as conn:
                    first = await (await conn.execute(probe)).fetchone()
                    await conn.execute("SELECT pg_sleep(0.001)")
                assert first is not None
                setting, pid, sites = first
            else:
                ((setting, pid, sites),) = await db.fetch(probe, site_id=site)
            seen.append((site, setting, pid, sites))

        try:
            await asyncio.gather(*(one(i) for i in range(600)))
        finally:
            await db.close()
        return seen, failed

    seen, failed = asyncio.run(run())
    assert failed > 0 and len(seen) + failed == 600 - len(range(0, 600, 11))
    for site, setting, _pid, sites in seen:
        assert setting == ("" if site is None else str(site))
        assert set(sites) <= ({site} if site is not None else set())
    tenants_per_backend: dict[int, set[int | None]] = {}
    for site, _setting, pid, _sites in seen:
        tenants_per_backend.setdefault(pid, set()).add(site)
    assert any(len(t) == 3 for t in tenants_per_backend.values()), tenants_per_backend
