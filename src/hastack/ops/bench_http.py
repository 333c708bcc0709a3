"""`hastack bench http`: requests/s and latency through HAProxy vs straight to an instance,
for 1..N instances, and the cost of the app tier's middleware path, in one run (wrk)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg

from hastack.errors import HastackError, Unavailable
from hastack.ops.app_tokens import create_token, revoke_tokens
from hastack.runtime.bench_server import bare_server, bench_haproxy
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack
from hastack.spec.names import APP_BACKEND, LOAD_TEST_HEADER, WEB_FRONTEND

if TYPE_CHECKING:
    from hastack.tools.wrk import WrkResult

BENCH_USERS = 32
"""Tokens rotated by the full-path runs: 32 x the authenticated tier's 1000/s per user."""


EDGE_DENY = "edge limit deny path (429s)"
BENCH_PLAIN = "bench haproxy plain x1"
BENCH_TLS = "bench haproxy tls x1"
"""A throwaway HAProxy with the two frontends identical but for TLS: what TLS costs."""


@dataclass
class HttpBenchReport:
    duration_s: int
    connections: int
    instances: int
    results: dict[str, WrkResult] = field(default_factory=dict)

    def ratio(self, a: str, b: str) -> float | None:
        if a in self.results and b in self.results and self.results[b].requests_per_s:
            return round(self.results[a].requests_per_s / self.results[b].requests_per_s, 3)
        return None

    def _figure(self, label: str, name: str) -> float | None:
        result = self.results.get(label)
        return None if result is None else float(getattr(result, name))

    def summary(self) -> dict[str, float | None]:
        low_direct, low_proxy = (
            self.results.get("low-load direct"),
            self.results.get("low-load haproxy tls"),
        )
        added = None
        if low_direct and low_proxy:
            added = round(low_proxy.p50_ms - low_direct.p50_ms, 3)
        return {
            "haproxy_tls_vs_direct": self.ratio("haproxy tls x1", "app1 direct"),
            "tls_vs_plain_at_haproxy": self.ratio(BENCH_TLS, BENCH_PLAIN),
            "middleware_vs_bare": self.ratio("app1 direct", "bare direct"),
            "full_path_vs_bare": self.ratio("app1 direct full path", "bare direct"),
            "scale_n_vs_1": self.ratio(f"haproxy tls x{self.instances}", "haproxy tls x1"),
            "added_latency_p50_ms": added,
            "edge_deny_per_s": self._figure(EDGE_DENY, "requests_per_s"),
            "ready_p99_under_load_ms": self._figure("ready under load", "p99_ms"),
        }


@contextlib.contextmanager
def _only_instances(stack: Stack, keep: int) -> Iterator[None]:
    """Take all but the first `keep` instances out of HAProxy for a measurement."""
    away = [i.name for i in stack.plan.app_instances[keep:]]
    haproxy = stack.haproxy()
    for name in away:
        haproxy.set_state(APP_BACKEND, name, "maint")
    try:
        yield
    finally:
        for name in away:
            haproxy.set_state(APP_BACKEND, name, "ready")


def bench_http(
    stack: Stack,
    *,
    duration_s: int = 10,
    connections: int = 32,
    progress: Progress | None = None,
) -> HttpBenchReport:
    progress = progress or NullProgress()
    plan = stack.plan
    if not plan.app_instances:
        raise HastackError(
            "this stack has no app instances (app.instances is 0)", "hastack scale app=2"
        )
    headers = {LOAD_TEST_HEADER: stack.secrets.load_test_token}
    wrk = stack.wrk().run
    report = HttpBenchReport(duration_s, connections, len(plan.app_instances))
    app1 = plan.app_instances[0]
    live = "/health/live"

    def measure(
        label: str,
        url: str,
        conns: int = connections,
        extra: dict[str, str] | None = None,
        rotate: tuple[str, list[str]] | None = None,
        load_header: bool = True,
    ) -> None:
        progress.step(f"{label}: {url} ({duration_s} s, {conns} connections)")
        report.results[label] = wrk(
            url,
            duration_s=duration_s,
            connections=conns,
            headers={**(headers if load_header else {}), **(extra or {})},
            rotate=rotate,
        )
        progress.done(f"{label}: {report.results[label].requests_per_s:,.0f} req/s")

    with bare_server(stack, "hastack.app.bare:app") as bare:
        measure("bare direct", bare)
    with bare_server(stack, "hastack.app.bare:raw_app") as bare:
        measure("raw asgi direct", bare)
    measure("app1 direct", f"{app1.url}{live}")
    with _only_instances(stack, 1):
        measure("haproxy tls x1", f"{plan.app_url}{live}")
        measure("low-load direct", f"{app1.url}{live}", conns=1)
        measure("low-load haproxy tls", f"{plan.app_url}{live}", conns=1)
        with bench_haproxy(stack) as (plain, tls):
            measure(BENCH_PLAIN, f"{plain}{live}")
            measure(BENCH_TLS, f"{tls}{live}")
    if len(plan.app_instances) > 1:
        measure(f"haproxy tls x{len(plan.app_instances)}", f"{plan.app_url}{live}")
    # Without the load-test header: past the per-client limit, HAProxy answers 429 itself.
    try:
        measure(EDGE_DENY, f"{plan.app_url}{live}", load_header=False)
    finally:
        # This machine's address is over its limit now; do not make its next clients wait.
        with contextlib.suppress(Unavailable):
            stack.haproxy().clear_table(WEB_FRONTEND)
    if plan.app_is_demo:
        # Several users, so that the per-user tier (not the app) is not what is measured.
        tokens = [
            create_token(stack, f"bench-{n}", ["bench-site"], days=1) for n in range(BENCH_USERS)
        ]
        try:
            auth = {plan.spec.app.tenant_header: str(tokens[0].sites[0])}
            rotate = ("Authorization", [f"Bearer {t.token}" for t in tokens])
            # Token, Redis rate-limit tier and tenant check, no query: the full middleware path.
            measure("app1 direct full path", f"{app1.url}/whoami", extra=auth, rotate=rotate)
            measure(
                "demo list (db, replicas) via haproxy",
                f"{plan.app_url}/work-orders?limit=10",
                extra=auth,
                rotate=rotate,
            )
            # What HAProxy's checks see while the instances are busy: readiness, one client,
            # next to a full load of database-backed requests.
            with ThreadPoolExecutor(1) as pool:
                background = pool.submit(
                    wrk,
                    f"{plan.app_url}/work-orders?limit=10",
                    duration_s=duration_s,
                    connections=connections,
                    headers={**headers, **auth},
                    rotate=rotate,
                )
                measure("ready under load", f"{app1.url}{plan.spec.app.health_path}", conns=1)
                report.results["load next to ready"] = background.result()
        finally:
            for token in tokens:  # benchmark credentials do not outlive the benchmark
                with contextlib.suppress(HastackError, psycopg.Error):
                    revoke_tokens(stack, token_id=token.token_id)
    return report
