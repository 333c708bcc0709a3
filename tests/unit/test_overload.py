"""The overload drill's verdict, from what it measured (pure)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hastack.drills.events import Failure
from hastack.drills.overload import admitted_p99_bound_ms, capacity, overload_expectations
from hastack.spec import StackSpec, derive_plan
from hastack.tools.wrk import Wrk

PLAN = derive_plan(StackSpec())
SHED = Failure(
    "http-get1", None, 1.0, "503", "HTTP 503 Retry-After 1: the service is busy, try again shortly"
)


def facts(**over: int) -> dict[str, Any]:
    base = {"shed_by_haproxy": 900, "instance_5xx": 0, "checks_down": 0, "wrk_socket_errors": 0}
    return {**base, **over}


def failed(found: list[dict[str, Any]]) -> list[str]:
    return [e["what"] for e in found if not e["ok"]]


def test_capacity_is_every_instances_maxconn_plus_the_queue() -> None:
    assert capacity(PLAN) == 2 * 20 + 40


def test_a_minute_shed_by_haproxy_with_fast_admitted_requests_passes() -> None:
    assert failed(overload_expectations(PLAN, facts(), [SHED, SHED], [12.0] * 200)) == []


def test_a_run_that_shed_nothing_did_not_overload() -> None:
    (what,) = failed(overload_expectations(PLAN, facts(shed_by_haproxy=0), [], [5.0]))
    assert "HAProxy shed the excess" in what


def test_an_instance_answering_5xx_or_marked_down_fails() -> None:
    found = failed(overload_expectations(PLAN, facts(instance_5xx=3, checks_down=1), [], [5.0]))
    assert any("no 5xx from an instance (saw 3)" in w for w in found)
    assert any("no instance marked down by a check (saw 1)" in w for w in found)


def test_a_rejection_without_retry_after_or_from_the_app_fails() -> None:
    app_503 = Failure("http-get1", None, 1.0, "503", "HTTP 503 Retry-After 1: database unavailable")
    bare_503 = Failure("http-get1", None, 1.0, "503", "HTTP 503: the service is busy")
    timeout = Failure("http-post1", None, 1.0, None, "ReadTimeout")
    (what,) = failed(
        overload_expectations(PLAN, facts(), [SHED, app_503, bare_503, timeout], [5.0])
    )
    assert "4 rejected, 3 otherwise" in what


def test_slow_admitted_requests_fail() -> None:
    slow = [10.0] * 98 + [admitted_p99_bound_ms(PLAN) + 1] * 2
    (what,) = failed(overload_expectations(PLAN, facts(), [], slow))
    assert "p99 within 3000 ms" in what
    assert failed(overload_expectations(PLAN, facts(), [], []))  # nothing admitted: not proven


def test_no_measurement_is_a_failure() -> None:
    assert failed(overload_expectations(PLAN, {}, [], [5.0])) == [
        "the overload ran and was measured"
    ]


def test_wrk_waits_longer_than_haproxy_takes_to_answer_a_queued_request() -> None:
    """At wrk's default 2 s timeout, equal to the queue timeout, a 503 sent at 2.0 s raced
    it and counted as a socket error: the drill gives wrk more than the admitted p99 bound."""
    plan = derive_plan(StackSpec())
    timeout_s = math.ceil(admitted_p99_bound_ms(plan) / 1000) + 2
    assert timeout_s * 1000 > plan.admission.queue_timeout_ms + 1000
    argv = Wrk()._argv("https://x/", Path("s.lua"), 60, 64, 2, timeout_s)
    assert f"--timeout={timeout_s}s" in argv
    assert not any(a.startswith("--timeout") for a in Wrk()._argv("u", Path("s"), 1, 1, 1))
