"""`hastack bench http`: requests/s and latency through HAProxy vs straight to an instance,
for 1..N instances, and the cost of the app tier's middleware path, in one run (wrk)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hastack.errors import HastackError, Unavailable
from hastack.ops.app_tokens import load_tokens
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
BARE_DB = "bare db direct"
"""The demo list's SELECT from a bare Starlette route on a pool like the app's: what the
database-backed request costs without the app tier (no token, tenant, limit, transaction)."""
BARE_DB_TENANT = "bare db tenant direct"
"""The same for the bench users' site, with the tenant setting sent as the app sends it."""
DEMO_LIST = "demo list haproxy tls"
DEMO_LIST_DIRECT = "demo list direct x1"
LIST_PATH = "/work-orders?limit=10"


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
            "demo_list_vs_bare_db": self.ratio(self.demo_list_n, BARE_DB),
            "demo_list_direct_vs_bare_db": self.ratio(DEMO_LIST_DIRECT, BARE_DB),
            "tenant_setting_vs_bare_db": self.ratio(BARE_DB_TENANT, BARE_DB),
            "app_tier_vs_bare_db_tenant": self.ratio(DEMO_LIST_DIRECT, BARE_DB_TENANT),
            "demo_list_scale_n_vs_1": self.ratio(self.demo_list_n, f"{DEMO_LIST} x1"),
            "demo_list_req_per_s": self._figure(self.demo_list_n, "requests_per_s"),
        }

    def invalid(self) -> list[str]:
        """Rows that measured something else than they claim: socket errors (a server that
        died or refused), or answers other than 2xx (but the edge-limit row, which measures
        HAProxy's 429s). A benchmark with one is a failed run."""
        found = []
        for label, r in self.results.items():
            if r.socket_errors:
                found.append(f"{label}: {r.socket_errors} socket errors in {r.requests} requests")
            if r.non_2xx and label != EDGE_DENY:
                found.append(f"{label}: {r.non_2xx} non-2xx answers in {r.requests} requests")
        return found

    @property
    def demo_list_n(self) -> str:
        return f"{DEMO_LIST} x{self.instances}"


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
        with load_tokens(stack, "bench", BENCH_USERS, "bench-site") as tokens:
            auth = {plan.spec.app.tenant_header: str(tokens[0].sites[0])}
            rotate = ("Authorization", [f"Bearer {t.token}" for t in tokens])
            # Token, Redis rate-limit tier and tenant check, no query: the full middleware path.
            measure("app1 direct full path", f"{app1.url}/whoami", extra=auth, rotate=rotate)
            db_env = {"DATABASE_URL_RO": stack.urls()["DATABASE_URL_RO"]}
            with bare_server(stack, "hastack.demo.baseline:app", env=db_env) as bare:
                measure(BARE_DB, bare)
                measure(BARE_DB_TENANT, f"{bare}tenant?site={tokens[0].sites[0]}")
            measure(DEMO_LIST_DIRECT, f"{app1.url}{LIST_PATH}", extra=auth, rotate=rotate)
            with _only_instances(stack, 1):
                measure(f"{DEMO_LIST} x1", f"{plan.app_url}{LIST_PATH}", extra=auth, rotate=rotate)
            if len(plan.app_instances) > 1:
                measure(report.demo_list_n, f"{plan.app_url}{LIST_PATH}", extra=auth, rotate=rotate)
            # What HAProxy's checks see while the instances are busy: readiness, one client,
            # next to a full load of database-backed requests.
            with ThreadPoolExecutor(1) as pool:
                background = pool.submit(
                    wrk,
                    f"{plan.app_url}{LIST_PATH}",
                    duration_s=duration_s,
                    connections=connections,
                    headers={**headers, **auth},
                    rotate=rotate,
                )
                measure("ready under load", f"{app1.url}{plan.spec.app.health_path}", conns=1)
                report.results["load next to ready"] = background.result()
    return report
