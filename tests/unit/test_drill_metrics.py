from __future__ import annotations

import math

import pytest

from hastack.drills.events import Ack, Failure
from hastack.drills.metrics import (
    DID_NOT_RECOVER,
    buckets,
    error_kinds,
    largest_gap,
    summary,
)


def at(*times: float) -> list[Ack]:
    return [Ack("url", i, t - 0.002, t, "pg1") for i, t in enumerate(times)]


def test_gap_spans_the_fault_and_rto_counts_from_it() -> None:
    gap = largest_gap(at(0.0, 0.5, 0.9, 3.4, 3.5, 3.6), t0=1.0, t_end=10.0)
    assert gap.gap_s == 2.5
    assert (gap.last_before, gap.first_after) == (0.9, 3.4)
    assert gap.rto_s == 2.4


def test_no_outage_means_rto_zero() -> None:
    gap = largest_gap(at(*[i * 0.02 for i in range(200)]), t0=1.0, t_end=4.0)
    assert gap.gap_s == 0.02 and gap.rto_s <= 0.02


def test_no_ack_after_the_fault_is_an_unbounded_rto() -> None:
    gap = largest_gap(at(0.0, 0.5), t0=1.0, t_end=30.0)
    assert gap.gap_s == 29.5 and math.isinf(gap.rto_s)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            [1.0, 2.0, 3.0, 4.0, 100.0],
            {"median": 3.0, "p95": 100.0, "max": 100.0, "did_not_recover": 0},
            id="all-recovered",
        ),
        pytest.param(
            [2.0] * 20 + [9.0],
            {"median": 2.0, "p95": 2.0, "max": 9.0, "did_not_recover": 0},
            id="one-outlier-above-p95",
        ),
        pytest.param(
            [4.0, 1.0, 3.0, 2.0],
            {"median": 2.5, "p95": 4.0, "max": 4.0, "did_not_recover": 0},
            id="even-count-median-is-the-mean-of-the-middle-two",
        ),
        pytest.param(
            [1.23456, 1.23456, 1.23456],
            {"median": 1.235, "p95": 1.235, "max": 1.235, "did_not_recover": 0},
            id="rounded-to-ms",
        ),
        # A run that never recovered is counted, never dropped: it ranks above every number.
        pytest.param(
            [1.0, 2.0, 3.0, 4.0, 5.0, None, 6.0, 7.0, 8.0, 9.0],
            {
                "median": 5.5,
                "p95": DID_NOT_RECOVER,
                "max": DID_NOT_RECOVER,
                "did_not_recover": 1,
            },
            id="one-of-ten-never-recovered",
        ),
        pytest.param(
            [math.inf, 1.0, 2.0],
            {"median": 2.0, "p95": DID_NOT_RECOVER, "max": DID_NOT_RECOVER, "did_not_recover": 1},
            id="infinite-rto-is-did-not-recover",
        ),
        pytest.param(
            [None, None, 1.0],
            {
                "median": DID_NOT_RECOVER,
                "p95": DID_NOT_RECOVER,
                "max": DID_NOT_RECOVER,
                "did_not_recover": 2,
            },
            id="most-never-recovered",
        ),
        pytest.param(
            [],
            {"median": None, "p95": None, "max": None, "did_not_recover": 0},
            id="no-run",
        ),
    ],
)
def test_summary_median_p95_max(values: list[float | None], expected: dict[str, object]) -> None:
    assert summary(values) == expected


def test_buckets() -> None:
    assert buckets([0.05, 0.06, 0.25, 0.99], start=0.0, end=1.0, width_s=0.25) == [2, 1, 0, 1]


def test_error_kinds_counts_messages_of_one_writer_in_the_window() -> None:
    login = "server login has been failing, try again later (server_login_retry)"
    failures = [
        Failure("url", None, 1.0, "08P01", login),
        Failure("url", 7, 1.1, "08P01", "server conn crashed?"),
        Failure("url", None, 1.2, "08P01", login),
        Failure("url", None, 9.0, "08P01", login),  # after the window
        Failure("direct", None, 1.0, None, "connection refused"),
    ]
    assert error_kinds(failures, "url", 0.0, 5.0) == {
        f"08P01: {login}": 2,
        "08P01: server conn crashed?": 1,
    }
    assert error_kinds(failures, "direct", 0.0, 5.0) == {"connection refused": 1}
