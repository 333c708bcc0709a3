from __future__ import annotations

from typing import Any

from hastack.drills.html import render_html


def make_report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "scenario": "kill-primary",
        "summary": "SIGKILL the primary postgres and wait for a new leader",
        "started_at": "2024-05-01T12:00:00.000000",
        "passed": True,
        "failure_reasons": [],
        "write_gap_s": 2.5,
        "rto_s": 2.4,
        "rpo_lost_acked_writes": 0,
        "split_brain": False,
        "acked_writes": 1234,
        "errors": 7,
        "old_primary": "pg1",
        "new_primary": "pg2",
        "fencing": True,
        "writers": {
            "url": {"acks": 600, "errors": 5, "write_gap_s": 2.5, "rto_s": 2.4},
            "pinned": {"acks": 634, "errors": 2, "write_gap_s": 30.0, "rto_s": None},
        },
        "checker": {
            "lost_acked_writes": [],
            "duplicates": [],
            "invariant_ok": True,
            "converged": True,
            "split_brain": False,
            "dual_primary_samples": 0,
            "problems": [],
        },
        "expectations": [{"what": "new leader within 30 s", "ok": True}],
        "timeline": [
            {"t": -1.0, "kind": "note", "text": "workload running", "node": None},
            {"t": 0.0, "kind": "fault", "text": "kill -9 postgres", "node": "pg1"},
            {"t": 1.7, "kind": "leader", "text": "pg2 took the leader key", "node": "pg2"},
            {"t": 1.8, "kind": "fencer", "text": "fenced pg1", "node": "pg1"},
            {"t": 2.4, "kind": "recovered", "text": "first write acked", "node": None},
            {"t": 5.0, "kind": "healthy", "text": "cluster healthy", "node": None},
        ],
        "series": {
            "bucket_s": 0.5,
            "start_s": -1.0,
            "acks": [10, 12, 0, 0, 0, 0, 0, 3, 11, 0],
            "errors": [0, 0, 2, 3, 0, 0, 0, 0, 0, 0],
        },
        "durations": {"recovered_s": 2.4, "healed_s": None, "healthy_s": 5.0},
    }
    report.update(overrides)
    return report


def test_page_is_self_contained_html_with_a_chart() -> None:
    page = render_html(make_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "</svg>" in page
    assert "kill-primary" in page and "PASSED" in page and "FAILED" not in page
    assert "pg1 &rarr; pg2" in page
    # Self-contained: nothing is fetched from elsewhere.
    assert "<script" not in page and "<link" not in page and "src=" not in page


def test_failed_report_shows_badge_and_reasons() -> None:
    page = render_html(
        make_report(passed=False, failure_reasons=["lost 3 acknowledged writes"], new_primary=None)
    )
    assert "FAILED" in page and "PASSED" not in page
    assert "lost 3 acknowledged writes" in page
    assert "pg1 &rarr; none" in page


def test_report_strings_are_escaped() -> None:
    evil = "<script>alert(1)</script>"
    timeline = [{"t": 0.5, "kind": "heal", "text": evil, "node": "<b>pg9</b>"}]
    page = render_html(
        make_report(
            scenario="x<y",
            timeline=timeline,
            writers={evil: {"acks": 1, "errors": 0, "write_gap_s": 0.1, "rto_s": None}},
            checker={"problems": [evil]},
        )
    )
    assert evil not in page and "<b>pg9" not in page and "x<y" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "x&lt;y" in page


def test_one_bar_per_non_empty_bucket() -> None:
    report = make_report()
    page = render_html(report)
    assert page.count('<rect class="ack"') == sum(1 for a in report["series"]["acks"] if a)
    assert page.count('<rect class="err"') == sum(1 for e in report["series"]["errors"] if e)


def test_markers_for_fault_and_selected_events_only() -> None:
    page = render_html(make_report())
    svg = page[page.index("<svg") : page.index("</svg>")]
    for label in ("fault", "leader pg2", "fencer pg1", "recovered", "healthy"):
        assert f'">{label}</text>' in svg
    assert "workload running" not in svg


def test_empty_series_timeline_and_missing_rto() -> None:
    page = render_html(
        make_report(
            rto_s=None,
            timeline=[],
            series={"bucket_s": 0.1, "start_s": -3.0, "acks": [], "errors": []},
            writers={},
            expectations=[],
            durations={},
        )
    )
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert '<rect class="ack"' not in page
    assert "no write series recorded" in page
    assert "<td>RTO</td><td>never</td>" in page


def test_timeline_table_uses_two_decimals() -> None:
    page = render_html(make_report())
    assert "<td>-1.00</td><td>note</td><td></td><td>workload running</td>" in page
    assert "<td>1.70</td><td>leader</td><td>pg2</td>" in page
