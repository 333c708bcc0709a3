"""The app tier's pure parts: middlewares, signing, rate-limit arithmetic, settings."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from hastack.app import AppSettings, SignatureError, sign_url, verify_url
from hastack.app.auth import Authenticator, sign, unsign
from hastack.app.body import json_body
from hastack.app.errors import EXCEPTION_HANDLERS, BodyLimitMiddleware
from hastack.app.factory import create_app
from hastack.app.health import CACHE_S, Health
from hastack.app.keys import SESSIONS, SIGNED_URLS, derive_key
from hastack.app.logs import AccessLog
from hastack.app.metrics import AppMetrics
from hastack.app.ratelimit import (
    Allowance,
    Verdict,
    granted_from,
    identity_key,
    lease_size,
    window_key,
)
from hastack.app.request import RequestMiddleware
from hastack.app.requestid import current_request_id
from hastack.app.tokens import hash_token, new_token


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"request_id": current_request_id(), "size": len(body)})


async def item(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["id"]})


async def boom(_request: Request) -> Response:
    raise RuntimeError("secret internals")


async def db_down(_request: Request) -> Response:
    raise psycopg.OperationalError("server conn crashed?")


async def limited(request: Request) -> Response:
    request.scope.setdefault("state", {})["ratelimit"] = Verdict(True, 10, 7, 30)
    return JSONResponse({}, headers={"RateLimit-Limit": "stale"})


def client(metrics: AppMetrics | None = None, access_log: AccessLog | None = None) -> TestClient:
    metrics = metrics or AppMetrics()
    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/items/{id}", item),
            Route("/boom", boom),
            Route("/db-down", db_down),
            Route("/limited", limited),
            Route("/metrics", metrics.endpoint()),
        ],
        middleware=[
            Middleware(RequestMiddleware, metrics=metrics, access_log=access_log),
            Middleware(BodyLimitMiddleware, max_bytes=100),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return TestClient(app, raise_server_exceptions=False)


def test_request_id_is_kept_or_made_and_echoed() -> None:
    c = client()
    given = c.get("/echo", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assert given.json()["request_id"] == "abc-123"
    made = c.get("/echo", headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["x-request-id"]) == 32
    assert made.json()["request_id"] == made.headers["x-request-id"]


def test_security_headers_on_every_response_including_errors() -> None:
    for path in ("/echo", "/nope"):
        r = client().get(path)
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" in r.headers and "referrer-policy" in r.headers


def test_errors_are_json_with_request_id_and_never_a_stack_trace() -> None:
    c = client()
    missing = c.get("/nope", headers={"X-Request-ID": "r1"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found", "request_id": "r1"}
    crash = c.get("/boom", headers={"X-Request-ID": "r2"})
    assert crash.status_code == 500
    assert crash.json() == {"error": "internal error", "request_id": "r2"}
    assert crash.headers["x-request-id"] == "r2"
    assert "secret internals" not in crash.text and "Traceback" not in crash.text


def test_an_unavailable_database_is_503_with_retry_after() -> None:
    r = client().get("/db-down", headers={"X-Request-ID": "r3"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json() == {"error": "database unavailable, retry shortly", "request_id": "r3"}


def test_oversized_body_is_413_by_length_and_while_streaming() -> None:
    c = client()
    assert c.post("/echo", content=b"x" * 50).json()["size"] == 50
    big = c.post("/echo", content=b"x" * 101)
    assert big.status_code == 413 and big.json()["error"] == "request body too large"

    def chunks():  # no Content-Length: caught while streaming
        yield b"x" * 60
        yield b"x" * 60

    assert c.post("/echo", content=chunks()).status_code == 413


def test_metrics_use_the_route_template_not_the_raw_path() -> None:
    metrics = AppMetrics()
    c = client(metrics)
    for i in range(3):
        c.get(f"/items/{i}")
    c.get("/nope")
    text = c.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/items/{id}",status="200"} 3.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "/items/1" not in text
    assert "http_request_duration_seconds_bucket" in text
    assert "http_requests_in_flight" in text


def test_signed_urls_expire_and_resist_tampering() -> None:
    url = sign_url("k", "/files/a.csv", ttl_s=60, now=1000)
    assert verify_url("k", url, now=1059) == "/files/a.csv"
    with pytest.raises(SignatureError, match="link expired"):
        verify_url("k", url, now=1061)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_url("k", url.replace("a.csv", "b.csv"), now=1001)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_url("other", url, now=1001)
    with pytest.raises(SignatureError, match="missing signature"):
        verify_url("k", "/files/a.csv", now=1001)


def test_session_cookie_signing() -> None:
    signed = sign("k", "session-1")
    assert unsign("k", signed) == "session-1"
    assert unsign("k", signed[:-1] + ("0" if signed[-1] != "0" else "1")) is None
    assert unsign("other", signed) is None


def test_tokens_are_random_and_stored_hashed() -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("hst_") and len(a) > 40
    assert hash_token(a) == hash_token(a) and len(hash_token(a)) == 64 and a not in hash_token(a)


def test_rate_limit_windows_and_headers() -> None:
    key, reset = window_key("login", "alice", 60, now=125.5)
    assert key == f"hastack/rl/login/{identity_key('alice')}/2" and reset == 55
    huge, _ = window_key("login", "x" * 1_000_000 + "\n", 60, now=125.5)
    assert len(huge) < 80  # a client-chosen identity never sizes a Redis key
    denied = Verdict(False, 5, 0, 55).headers()
    assert denied["Retry-After"] == "55" and denied["RateLimit-Remaining"] == "0"
    assert "Retry-After" not in Verdict(True, 5, 4, 55).headers()


def test_leases_are_exact_for_small_limits_and_5_percent_for_large() -> None:
    assert lease_size(5) == 1 and lease_size(20) == 1 and lease_size(1000) == 50
    assert granted_from(total_after=50, lease=50, limit=1000) == 50
    assert granted_from(total_after=1010, lease=50, limit=1000) == 40
    assert granted_from(total_after=1060, lease=50, limit=1000) == 0


def test_leased_tokens_never_exceed_the_limit_across_instances() -> None:
    for limit, instances in [(5, 1), (5, 3), (1000, 2), (1000, 7), (37, 4)]:
        allowances = [Allowance(ends_at=60) for _ in range(instances)]
        shared, allowed, trips = 0, 0, 0
        for i in range(limit * 3):
            allowance = allowances[i % instances]
            if allowance.spend():
                allowed += 1
                continue
            if allowance.exhausted(limit):
                continue
            lease = lease_size(limit)
            shared += lease
            trips += 1
            allowance.add_lease(shared, lease, limit)
            allowed += allowance.spend()
        assert allowed <= limit
        # Unspent leases held by other instances are the only shortfall.
        assert allowed >= limit - (instances - 1) * lease_size(limit), (limit, instances)
        assert trips <= limit // lease_size(limit) + 2 * instances


def test_settings_from_env_and_json(tmp_path: Path) -> None:
    config = tmp_path / "app.json"
    config.write_text(
        json.dumps({"tenant_header": "X-Tenant", "rate_limits": {"login": "3/minute"}})
    )
    settings = AppSettings.from_env(
        {
            "DATABASE_URL": "postgresql://a",
            "REDIS_URL": "redis://b",
            "HASTACK_APP_SECRET": "s",
            "HASTACK_APP_CONFIG": str(config),
        }
    )
    assert settings.tenant_header == "X-Tenant"
    assert settings.rate_limits.login == "3/minute"
    assert settings.rate_limits.authenticated == "1000/second"
    with pytest.raises(RuntimeError, match="DATABASE_URL is not set"):
        AppSettings.from_env({})


def test_access_log_lines_are_json_like_every_other_log_line() -> None:
    stream = io.StringIO()
    log = AccessLog("app1", stream)
    log.write(log.line(1_700_000_000.25, "r1", "GET", '/a"b', 200, 1.234, "203.0.113.9"))
    record = json.loads(stream.getvalue())
    assert record == {
        "time": "2023-11-14T22:13:20.250+00:00",
        "level": "info",
        "logger": "hastack.access",
        "message": "request",
        "request_id": "r1",
        "instance": "app1",
        "method": "GET",
        "path": '/a"b',
        "status": 200,
        "client": "203.0.113.9",
        "duration_ms": 1.23,
    }


def test_rate_limit_headers_of_the_last_check_replace_the_apps() -> None:
    r = client().get("/limited")
    assert r.headers.get_list("ratelimit-limit") == ["10"]
    assert r.headers["ratelimit-remaining"] == "7" and r.headers["ratelimit-reset"] == "30"
    assert "retry-after" not in r.headers


def test_every_request_gets_one_access_log_line() -> None:
    stream = io.StringIO()
    client(access_log=AccessLog("app1", stream)).get("/items/7", headers={"X-Request-ID": "r9"})
    record = json.loads(stream.getvalue())
    assert (record["request_id"], record["path"], record["status"]) == ("r9", "/items/7", 200)


async def login_like(request: Request) -> Response:
    return JSONResponse({"got": await json_body(request)})


def test_json_endpoints_refuse_bodies_that_do_not_say_json() -> None:
    """A text/plain or form POST needs no CORS preflight: another site could send one."""
    app = Starlette(
        routes=[Route("/login", login_like, methods=["POST"])],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    with TestClient(app) as c:
        plain = c.post("/login", content=b'{"user":"a"}', headers={"content-type": "text/plain"})
        assert plain.status_code == 415 and "application/json" in plain.json()["error"]
        assert c.post("/login", data={"user": "a"}).status_code == 415
        ok = c.post("/login", json={"user": "a"})
        assert ok.status_code == 200 and ok.json() == {"got": {"user": "a"}}
        charset = {"content-type": "application/json; charset=utf-8"}
        assert c.post("/login", content=b"{}", headers=charset).status_code == 200
        assert c.post("/login", content=b"{", headers=charset).status_code == 422


def test_one_key_per_purpose_derived_from_the_app_secret() -> None:
    sessions, urls = derive_key("s3cret", SESSIONS), derive_key("s3cret", SIGNED_URLS)
    assert sessions != urls and len(sessions) == 64
    assert derive_key("s3cret", SESSIONS) == sessions and derive_key("other", SESSIONS) != sessions
    settings = AppSettings(database_url="postgresql://x", secret_key="s3cret")
    assert settings.session_key == sessions and settings.url_key == urls
    with pytest.raises(ValueError, match="empty"):
        derive_key("", SESSIONS)


def test_a_rotation_accepts_other_keys_for_a_time_but_signs_with_one() -> None:
    env = {
        "DATABASE_URL": "postgresql://x",
        "HASTACK_APP_SECRET": "new",
        "HASTACK_APP_SECRETS_ACCEPTED": "old",
        "HASTACK_APP_SECRETS_ACCEPTED_UNTIL": "2000",
    }
    settings = AppSettings.from_env(env)
    assert settings.session_keys(now=1999) == (
        derive_key("new", SESSIONS),
        derive_key("old", SESSIONS),
    )
    assert settings.session_keys(now=2000) == (derive_key("new", SESSIONS),)  # grace over
    old_url = sign_url(derive_key("old", SIGNED_URLS), "/files/a.csv", ttl_s=5000, now=1000)
    assert verify_url(settings.url_keys(now=1999), old_url, now=1999) == "/files/a.csv"
    with pytest.raises(SignatureError, match="bad signature"):
        verify_url(settings.url_keys(now=2000), old_url, now=2000)
    cookie = sign(derive_key("old", SESSIONS), "session-1")
    assert unsign(settings.session_keys(now=1999), cookie) == "session-1"
    assert unsign(settings.session_keys(now=2000), cookie) is None
    # Without the variables: the one key, nothing else accepted.
    plain = AppSettings.from_env({"DATABASE_URL": "postgresql://x", "HASTACK_APP_SECRET": "k"})
    assert plain.session_keys() == (derive_key("k", SESSIONS),)


def test_an_app_without_a_secret_refuses_to_start() -> None:
    with pytest.raises(RuntimeError, match="HASTACK_APP_SECRET is empty"):
        create_app([], settings=AppSettings(database_url="postgresql://x"), configure_logs=False)


def test_verifying_with_an_empty_secret_is_refused() -> None:
    url = sign_url("k", "/files/1", ttl_s=60)
    with pytest.raises(ValueError, match="secret key is needed"):
        verify_url("", url)


def test_an_overlong_bearer_token_is_refused_without_a_lookup() -> None:
    import asyncio

    auth = Authenticator(db=None, redis_client=None, keys=lambda: ("k",), cache_s=30)  # type: ignore[arg-type]
    assert asyncio.run(auth._from_token("hst_" + "x" * 10_000)) is None


class _Db:
    def __init__(self, is_open: bool, answers: bool, hangs_s: float = 0.0) -> None:
        self.is_open = is_open
        self.answers = answers
        self.hangs_s = hangs_s

    async def ping(self) -> None:
        await asyncio.sleep(self.hangs_s)
        if not self.answers:
            raise OSError("connection refused")


class _Redis:
    def __init__(self, answers: bool) -> None:
        self.answers = answers

    async def ping(self) -> None:
        if not self.answers:
            raise OSError("connection refused")


def _readiness(db: _Db, redis: _Redis, degraded_ok: bool = True) -> tuple[int, dict[str, Any]]:
    health = Health(db, redis, degraded_ok)  # type: ignore[arg-type]
    return asyncio.run(health._probe())


def test_readiness_asks_only_what_is_local_to_the_instance() -> None:
    """A database failover must not take every instance out of HAProxy's rotation at once."""
    assert _readiness(_Db(True, True), _Redis(True)) == (
        200,
        {"status": "ready", "checks": {"database": "ok", "redis": "ok"}},
    )
    status, body = _readiness(_Db(True, answers=False), _Redis(True))
    assert status == 200 and body["status"] == "degraded" and body["failing"] == ["database"]
    status, body = _readiness(_Db(True, True), _Redis(answers=False))
    assert status == 200 and body["failing"] == ["redis"]
    # What only this instance can get wrong: its pools are not open.
    assert _readiness(_Db(is_open=False, answers=True), _Redis(True))[0] == 503
    # An operator who asked for Redis to count (degraded_without_redis: false) gets that.
    assert _readiness(_Db(True, True), _Redis(answers=False), degraded_ok=False)[0] == 503


def test_readiness_answers_at_once_while_a_dependency_hangs() -> None:
    """HAProxy's check must never wait for the database (1 s probe timeout during a failover):
    a check that times out takes the instance out of rotation. It answers with the last known
    state while a background probe finds out."""
    db = _Db(True, True)
    health = Health(db, _Redis(True), True)  # type: ignore[arg-type]

    async def scenario() -> tuple[int, dict[str, Any]]:
        await health.ready(None)  # type: ignore[arg-type]  # primes what is known
        db.answers, db.hangs_s = False, 3600.0  # the database stops answering at all
        await asyncio.sleep(CACHE_S + 0.05)  # the known state is stale now
        # If readiness awaited the probe, this would wait for the hour.
        response = await asyncio.wait_for(health.ready(None), timeout=30)  # type: ignore[arg-type]
        db.hangs_s = 0.0  # the probe under way keeps hanging; the next one answers
        assert health._refreshing is not None
        health._refreshing.cancel()
        await asyncio.sleep(CACHE_S + 0.05)
        await health.ready(None)  # type: ignore[arg-type]  # starts a fresh probe
        await asyncio.sleep(0.1)
        later = await health.ready(None)  # type: ignore[arg-type]
        return response.status_code, json.loads(bytes(later.body))

    status, later = asyncio.run(scenario())
    assert status == 200  # the last known state ("ready"), not the hanging probe
    assert later["status"] == "degraded" and later["failing"] == ["database"]
