"""The overload drill: database-backed requests at four times what the app tier admits, for
a minute. HAProxy must shed the excess itself (503 + Retry-After, from its queue bound or
queue timeout), keep every instance in rotation, and keep the admitted requests' latency
bounded; the instances must not answer 5xx themselves."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from hastack.drills.events import Failure
from hastack.drills.faults import DrillContext
from hastack.ops.app_tokens import load_tokens
from hastack.ops.bench_http import LIST_PATH
from hastack.spec.names import APP_BACKEND, BUSY_MESSAGE, LOAD_TEST_HEADER, WEB_FRONTEND
from hastack.spec.plan import StackPlan

OVERLOAD_FACTOR = 4
OVERLOAD_S = 60.0
MAX_OVERLOAD_S = 3600
"""wrk's own limit; the drill stops it after its hold (`--hold`, default OVERLOAD_S)."""
OVERLOAD_USERS = 32
"""Load spread over this many users: the per-user tier (1000/s) is not what sheds it."""


def capacity(plan: StackPlan) -> int:
    """Requests the app tier holds at once: every instance's maxconn plus the queue."""
    a = plan.admission
    return a.maxconn_per_instance * len(plan.app_instances) + a.max_queue


def admitted_p99_bound_ms(plan: StackPlan) -> float:
    """An admitted request waits at most the queue timeout, then is served: a second on top
    is generous for a page of ten rows."""
    return plan.admission.queue_timeout_ms + 1000.0


def overload(ctx: DrillContext) -> None:
    """Start the load (wrk, in the background); `end_overload` stops and measures it."""
    stack, plan = ctx.stack, ctx.stack.plan
    connections = OVERLOAD_FACTOR * capacity(plan)
    haproxy = stack.haproxy()
    tokens = ctx.held.enter_context(load_tokens(stack, "overload", OVERLOAD_USERS, "overload-site"))
    ctx.history.facts["overload_before"] = _counters(
        haproxy.counters(APP_BACKEND), haproxy.counters(WEB_FRONTEND)
    )
    ctx.history.mark(
        "fault",
        f"{connections} connections ({OVERLOAD_FACTOR} x the {capacity(plan)} requests the app "
        f"tier admits) on {LIST_PATH}",
    )
    load = stack.wrk().start(
        f"{plan.app_url}{LIST_PATH}",
        duration_s=MAX_OVERLOAD_S,
        connections=connections,
        threads=2,
        headers={
            LOAD_TEST_HEADER: stack.secrets.load_test_token,
            plan.spec.app.tenant_header: str(tokens[0].sites[0]),
        },
        rotate=("Authorization", [f"Bearer {t.token}" for t in tokens]),
        # Longer than any answer HAProxy promises (a queued request: 503 at the queue
        # timeout; an admitted one: within the p99 bound): at wrk's default 2 s, equal to the
        # queue timeout, a 503 sent at 2.0 s raced wrk's timeout and counted as a socket
        # error (19 of ~150,000 in one CI run).
        timeout_s=math.ceil(admitted_p99_bound_ms(plan) / 1000) + 2,
    )
    ctx.held.callback(_stop_quietly, load)
    ctx.history.facts["overload_load"] = load


def end_overload(ctx: DrillContext) -> None:
    """Stop the load and record what HAProxy and wrk counted."""
    load = ctx.history.facts.pop("overload_load")  # the WrkRun `overload` started
    result = load.stop()
    haproxy = ctx.stack.haproxy()
    after = _counters(haproxy.counters(APP_BACKEND), haproxy.counters(WEB_FRONTEND))
    before = ctx.history.facts.pop("overload_before")
    delta = {k: after[k] - before[k] for k in after}
    ctx.history.facts["overload"] = {
        "connections": load.connections,
        "capacity": capacity(ctx.stack.plan),
        "wrk_requests": result.requests,
        "wrk_req_per_s": result.requests_per_s,
        "wrk_non_2xx": result.non_2xx,
        "wrk_socket_errors": result.socket_errors,
        "wrk_p99_ms": result.p99_ms,
        **delta,
    }
    ctx.history.mark(
        "note",
        f"{result.requests} requests ({result.requests_per_s:,.0f}/s): "
        f"{delta['shed_by_haproxy']} answered 503 by HAProxy, {delta['instance_5xx']} 5xx "
        f"from instances, {delta['checks_down']} instances marked down",
    )


def _stop_quietly(load: Any) -> None:
    """An interrupted drill still stops its load (a second stop is harmless)."""
    with contextlib.suppress(Exception):
        if load.proc.proc.poll() is None:
            load.stop()


def _counters(
    backend: dict[str, dict[str, int]], frontend: dict[str, dict[str, int]]
) -> dict[str, int]:
    servers = [row for name, row in backend.items() if name not in ("BACKEND", "FRONTEND")]
    instance_5xx = sum(row.get("hrsp_5xx", 0) for row in servers)
    # Every 5xx the frontend sent that no instance produced: the queue bound's `return`, the
    # queue timeout's `http-error`, or no instance up.
    frontend_5xx = frontend.get("FRONTEND", {}).get("hrsp_5xx", 0)
    return {
        "instance_5xx": instance_5xx,
        "shed_by_haproxy": frontend_5xx - instance_5xx,
        "checks_down": sum(row.get("chkdown", 0) for row in servers),
    }


def overload_expectations(
    plan: StackPlan, facts: dict[str, Any], failures: list[Failure], admitted_ms: list[float]
) -> list[dict[str, Any]]:
    """Pure: what the overload drill promises, from what it measured. `failures`: the HTTP
    clients' failed requests in the window; `admitted_ms`: their successful GETs' latency."""
    if not facts:
        return [{"what": "the overload ran and was measured", "ok": False}]
    found = [
        {
            "what": f"HAProxy shed the excess itself ({facts['shed_by_haproxy']} answered 503)",
            "ok": facts["shed_by_haproxy"] > 0,
        },
        {
            "what": f"no 5xx from an instance (saw {facts['instance_5xx']})",
            "ok": facts["instance_5xx"] == 0,
        },
        {
            "what": f"no instance marked down by a check (saw {facts['checks_down']})",
            "ok": facts["checks_down"] == 0,
        },
        {
            "what": f"wrk: no socket error (saw {facts['wrk_socket_errors']})",
            "ok": facts["wrk_socket_errors"] == 0,
        },
    ]
    other = [f for f in failures if not _shed_by_haproxy(f)]
    found.append(
        {
            "what": (
                f"every rejected client request a 503 with Retry-After ({len(failures)} "
                f"rejected, {len(other)} otherwise: "
                f"{sorted({f.message for f in other})[:3] or 'none'})"
            ),
            "ok": not other,
        }
    )
    p99 = _p99(admitted_ms)
    bound = admitted_p99_bound_ms(plan)
    found.append(
        {
            "what": (
                f"admitted requests' p99 within {bound:.0f} ms "
                f"(saw {'none' if p99 is None else f'{p99:.0f} ms'})"
            ),
            "ok": p99 is not None and p99 <= bound,
        }
    )
    return found


def _shed_by_haproxy(failure: Failure) -> bool:
    return (
        failure.sqlstate == "503"
        and "Retry-After" in failure.message
        and BUSY_MESSAGE in failure.message
    )


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
