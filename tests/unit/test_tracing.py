"""The app tier's traces, exported by the real OTLP/HTTP exporter to a receiver on loopback
that decodes them with OpenTelemetry's own protobuf classes: server spans per request, the
caller's trace continued, parent-based sampling, database spans as children, trace ids in
the access log."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from hastack.app import AppSettings
from hastack.app.logs import AccessLog
from hastack.app.metrics import AppMetrics
from hastack.app.request import RequestMiddleware
from hastack.app.settings import _ratio
from hastack.app.tracing import TRACE_ID, Tracing, make_tracing
from hastack.render.app import render_app_env
from hastack.spec import SpecError, StackSpec, derive_plan
from hastack.spec.connection import tracing_settings
from tests.otlp_receiver import Receiver
from tests.unit.factories import fixed_secrets, load_text

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def traced_app(endpoint: str, ratio: float) -> tuple[TestClient, Tracing, io.StringIO]:
    settings = AppSettings(
        database_url="postgresql://unused",
        trace_endpoint=endpoint,
        trace_sample_ratio=ratio,
        service_name="shop",
        instance="app1",
    )
    tracing = make_tracing(settings)
    assert tracing is not None

    async def order(request: Request) -> Response:
        with tracing.database("SELECT", "ro"):
            pass
        return JSONResponse({"trace_id": TRACE_ID.get()})

    async def boom(_request: Request) -> Response:
        raise RuntimeError("broken")

    stream = io.StringIO()
    app = Starlette(
        routes=[Route("/orders/{id}", order), Route("/boom", boom)],
        middleware=[
            Middleware(
                RequestMiddleware,
                metrics=AppMetrics(),
                access_log=AccessLog("app1", stream),
                tracing=tracing,
            )
        ],
    )
    return TestClient(app, raise_server_exceptions=False), tracing, stream


def test_no_endpoint_no_tracing() -> None:
    assert make_tracing(AppSettings(database_url="postgresql://unused")) is None


def test_a_request_is_a_server_span_with_its_database_work_under_it(receiver: Receiver) -> None:
    client, tracing, stream = traced_app(receiver.endpoint, 1.0)
    answer = client.get("/orders/7")
    assert client.get("/boom").status_code == 500
    tracing.shutdown()  # flushes the batch
    server = next(s for s in receiver.spans if s["name"] == "GET /orders/{id}")
    database = next(s for s in receiver.spans if s["name"] == "db SELECT")
    assert server["kind"] == 2 and database["kind"] == 3  # SERVER, CLIENT
    assert database["parent"] == server["span_id"] and database["trace_id"] == server["trace_id"]
    assert server["attributes"]["http.route"] == "/orders/{id}"
    assert server["attributes"]["http.response.status_code"] == 200
    assert database["attributes"]["db.system"] == "postgresql"
    assert server["service"] == "shop"
    failed = next(s for s in receiver.spans if s["name"] == "GET /boom")
    assert failed["status"] == 2  # ERROR
    # The handler, the access log and the span agree on the trace id.
    assert answer.json()["trace_id"] == server["trace_id"]
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert logged[0]["trace_id"] == server["trace_id"]


def test_the_callers_trace_is_continued_and_sampling_is_parent_based(
    receiver: Receiver,
) -> None:
    client, tracing, stream = traced_app(receiver.endpoint, 0.0)  # keep no new trace
    sampled = {"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"}
    client.get("/orders/1", headers=sampled)
    client.get("/orders/2")  # a new trace at ratio 0: not kept
    client.get("/orders/3", headers={"traceparent": f"00-{'a' * 32}-{PARENT_SPAN}-00"})
    tracing.shutdown()
    servers = [s for s in receiver.spans if s["kind"] == 2]
    assert [(s["trace_id"], s["parent"]) for s in servers] == [(PARENT_TRACE, PARENT_SPAN)]
    # Every request's log line has its trace id, kept or not.
    logged = [json.loads(line)["trace_id"] for line in stream.getvalue().splitlines()]
    assert logged[0] == PARENT_TRACE and len(logged[1]) == 32 and logged[2] == "a" * 32


def test_the_ratio_comes_from_opentelemetrys_variable() -> None:
    assert _ratio(None) == 0.1 and _ratio("0.25") == 0.25 and _ratio("1") == 1.0
    for bad in ("half", "1.5", "-0.1"):
        with pytest.raises(RuntimeError, match="OTEL_TRACES_SAMPLER_ARG"):
            _ratio(bad)
    settings = AppSettings.from_env(
        {
            "DATABASE_URL": "postgresql://x",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces",
            "OTEL_TRACES_SAMPLER_ARG": "0.5",
            "OTEL_SERVICE_NAME": "shop",
        }
    )
    assert settings.trace_endpoint and settings.trace_sample_ratio == 0.5
    assert settings.service_name == "shop"


def test_the_spec_gives_the_instances_opentelemetrys_variables(tmp_path: Path) -> None:
    off = derive_plan(StackSpec())
    assert tracing_settings(off) == {}
    assert "OTEL_" not in render_app_env(off, fixed_secrets())
    loaded = load_text(
        tmp_path,
        "app:\n  tracing:\n    otlp_endpoint: http://127.0.0.1:4318/v1/traces\n"
        "    sample_ratio: 0.25\n",
    )
    on = derive_plan(loaded.spec)
    env = render_app_env(on, fixed_secrets())
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces\n" in env
    assert "OTEL_TRACES_SAMPLER=parentbased_traceidratio\n" in env
    assert "OTEL_TRACES_SAMPLER_ARG=0.25\n" in env
    assert "OTEL_SERVICE_NAME=hastack-app\n" in env


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("otlp_endpoint: 127.0.0.1:4318", "otlp_endpoint"),
        ("sample_ratio: 2", "sample_ratio"),
        ("sampling: 0.5", "sampling"),
    ],
)
def test_a_bad_tracing_section_is_refused_with_its_line(
    tmp_path: Path, value: str, says: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load_text(tmp_path, f"app:\n  tracing:\n    {value}\n")
    assert says in str(caught.value) and ":3" in str(caught.value)
