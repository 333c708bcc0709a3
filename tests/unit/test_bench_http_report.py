from __future__ import annotations

from hastack.ops.bench_http import BENCH_PLAIN, BENCH_TLS, EDGE_DENY, HttpBenchReport
from hastack.tools.wrk import WrkResult, rotating_header_lua


def result(rps: float, p50: float) -> WrkResult:
    return WrkResult("http://x/", 32, int(rps * 10), rps, p50, p50 * 2, p50 * 3, 0, 0)


def test_summary_ratios_and_added_latency() -> None:
    report = HttpBenchReport(10, 32, 2)
    report.results.update(
        {
            "bare direct": result(10000, 1.0),
            "app1 direct": result(8000, 1.2),
            "app1 direct full path": result(6500, 1.5),
            "haproxy tls x1": result(7600, 1.3),
            "haproxy tls x2": result(9000, 1.1),
            "low-load direct": result(2000, 0.40),
            "low-load haproxy tls": result(1700, 0.52),
            "ready under load": result(900, 2.0),
            EDGE_DENY: result(40000, 0.5),
            BENCH_PLAIN: result(8000, 1.0),
            BENCH_TLS: result(7000, 1.1),
            "bare db direct": result(2000, 8.0),
            "bare db tenant direct": result(1875, 8.5),
            "demo list direct x1": result(1500, 10.0),
            "demo list haproxy tls x1": result(1200, 12.0),
            "demo list haproxy tls x2": result(1300, 11.0),
        }
    )
    assert report.summary() == {
        "haproxy_tls_vs_direct": 0.95,
        "tls_vs_plain_at_haproxy": 0.875,
        "middleware_vs_bare": 0.8,
        "full_path_vs_bare": 0.65,
        "scale_n_vs_1": 1.184,
        "added_latency_p50_ms": 0.12,
        "edge_deny_per_s": 40000,
        "ready_p99_under_load_ms": 6.0,
        "demo_list_vs_bare_db": 0.65,
        "demo_list_direct_vs_bare_db": 0.75,
        "tenant_setting_vs_bare_db": 0.938,
        "app_tier_vs_bare_db_tenant": 0.8,
        "demo_list_scale_n_vs_1": 1.083,
        "demo_list_req_per_s": 1300,
    }


def test_summary_without_measurements_is_none() -> None:
    assert set(HttpBenchReport(10, 32, 1).summary().values()) == {None}


def test_rotating_header_hook_quotes_every_value() -> None:
    lua = rotating_header_lua("Authorization", ["Bearer a", 'Bearer "b"'])
    assert 'local values = {"Bearer a", "Bearer \\"b\\""}' in lua
    assert 'wrk.headers["Authorization"] = values[(i % #values) + 1]' in lua


def test_a_row_with_socket_errors_or_unexpected_answers_makes_the_run_invalid() -> None:
    report = HttpBenchReport(10, 32, 2)
    report.results["bare direct"] = WrkResult("http://x/", 32, 7039, 1404, 1.5, 2, 3, 0, 396656)
    report.results["app1 direct"] = result(8000, 1.2)
    report.results["demo list direct x1"] = WrkResult("http://x/", 32, 900, 90, 9, 9, 9, 12, 0)
    report.results[EDGE_DENY] = WrkResult("http://x/", 32, 9000, 900, 1, 1, 1, 9000, 0)
    assert report.invalid() == [
        "bare direct: 396656 socket errors in 7039 requests",
        "demo list direct x1: 12 non-2xx answers in 900 requests",
    ]
    assert HttpBenchReport(10, 32, 2).invalid() == []
