"""OpenTelemetry traces from the app tier: one server span per request (a `traceparent`
header from the caller continues its trace), a client span per database transaction or
statement under it, exported in batches over OTLP/HTTP to the spec's endpoint and sampled
parent-based at the spec's ratio (10 % of new traces by default; a request inside a sampled
trace is always kept). Every access log line carries its trace id, sampled or not, so a log
line leads to its trace and back.

Off until an endpoint is given: then OpenTelemetry is not even imported and a request costs
nothing more. The SDK is set up per app (no global provider): two apps in one process (tests)
do not share or fight over one.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hastack.app.settings import AppSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

TRACE_ID: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")
"""The current request's trace id (32 hex digits), for log lines; empty without tracing."""

_PROPAGATED = (b"traceparent", b"tracestate")


class Tracing:
    def __init__(self, provider: TracerProvider, tracer: Tracer) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = tracer
        self._context = context
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()

    def start_request(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], request_id: str
    ) -> tuple[Span, object]:
        """The request's server span, made current; returns it and the token to detach."""
        from opentelemetry.trace import SpanKind

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in _PROPAGATED}
        parent = self._propagator.extract(carrier)
        span = self.tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,
                "hastack.request_id": request_id,
            },
        )
        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        return span, token

    def end_request(self, span: Span, token: object, method: str, route: str, status: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._context.detach(token)  # type: ignore[arg-type]
        if span.is_recording():  # an unsampled span records nothing and has no name
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        span.end()

    @contextlib.contextmanager
    def database(self, operation: str, pool: str) -> Iterator[None]:
        """A client span around one database round of work (a transaction, a statement)."""
        from opentelemetry.trace import SpanKind

        attributes = {"db.system": "postgresql", "db.operation": operation, "hastack.pool": pool}
        with self.tracer.start_as_current_span(
            f"db {operation}", kind=SpanKind.CLIENT, attributes=attributes
        ):
            yield

    def shutdown(self) -> None:
        """Send what is batched (at the app's shutdown)."""
        self.provider.shutdown()


def trace_id_of(span: Any) -> str:
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.trace_id else ""


def make_tracing(settings: AppSettings) -> Tracing | None:
    """The app's tracing, or None when no endpoint is set."""
    if not settings.trace_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {"service.name": settings.service_name, "service.instance.id": settings.instance or "-"}
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))
    )
    # Batches leave from a thread of their own: a collector that is slow or away delays
    # nothing but those batches (and drops spans when its queue is full, never requests).
    exporter = OTLPSpanExporter(endpoint=settings.trace_endpoint, timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return Tracing(provider, provider.get_tracer("hastack.app"))
