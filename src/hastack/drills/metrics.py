"""Write gap and RTO from recorded acknowledgement times. Pure."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from hastack.drills.events import Ack, Failure

NO_OUTAGE_S = 0.25
"""Gaps shorter than this are the workload's own pace (~15 ms between acks), not an outage."""


@dataclass(frozen=True)
class Gap:
    gap_s: float
    """Largest time between two consecutive acknowledgements around the fault."""
    last_before: float | None
    """End of the last ack before that gap (monotonic)."""
    first_after: float | None
    """End of the first ack after it (monotonic)."""
    rto_s: float
    """Fault -> first acknowledged write after the gap (0 when writes never stopped)."""


def largest_gap(acks: Sequence[Ack], t0: float, t_end: float, lead_s: float = 1.0) -> Gap:
    """The largest gap between consecutive acks whose window overlaps [t0 - lead_s, t_end].
    With no ack at all after t0, the gap runs to t_end and RTO is unknown (inf)."""
    times = sorted(a.t_end for a in acks if t0 - lead_s <= a.t_end <= t_end)
    before = [a.t_end for a in acks if a.t_end < t0 - lead_s]
    if before:
        times.insert(0, max(before))
    if not times or times[-1] < t0:
        start = times[-1] if times else t0
        return Gap(round(t_end - start, 3), start if times else None, None, math.inf)
    best = Gap(0.0, None, None, 0.0)
    for prev, cur in itertools.pairwise(times):
        gap = cur - prev
        if gap > best.gap_s + 1e-6 and cur >= t0:
            best = Gap(round(gap, 3), prev, cur, round(max(0.0, cur - t0), 3))
    if best.gap_s < NO_OUTAGE_S:
        return Gap(best.gap_s, best.last_before, best.first_after, 0.0)
    return best


def failures_between(failures: Sequence[Failure], writer: str, t0: float, t1: float) -> int:
    return sum(1 for f in failures if f.writer == writer and t0 <= f.t <= t1)


def error_kinds(
    failures: Sequence[Failure], writer: str, t0: float, t1: float, top: int = 5
) -> dict[str, int]:
    """The most frequent error messages of one writer between t0 and t1, most frequent first:
    what a client saw ("server login has been failing", "server conn crashed?", 503...)."""
    counts = Counter(
        f"{f.sqlstate + ': ' if f.sqlstate else ''}{f.message[:120]}"
        for f in failures
        if f.writer == writer and t0 <= f.t <= t1
    )
    return dict(counts.most_common(top))


DID_NOT_RECOVER = "did not recover"

Figure = float | str | None
"""A summary figure: seconds, "did not recover", or None (no run at all)."""


def summary(values: Sequence[float | None]) -> dict[str, Figure]:
    """median, p95 (nearest rank) and max over every run. A run that never recovered (None
    or infinite) ranks above every number and shows as "did not recover": it is counted, not
    dropped."""
    ranked = sorted(math.inf if v is None or not math.isfinite(v) else float(v) for v in values)
    if not ranked:
        return {"median": None, "p95": None, "max": None, "did_not_recover": 0}
    rank = max(0, math.ceil(0.95 * len(ranked)) - 1)
    middle = len(ranked) // 2
    median = ranked[middle] if len(ranked) % 2 else (ranked[middle - 1] + ranked[middle]) / 2

    def shown(value: float) -> Figure:
        return DID_NOT_RECOVER if math.isinf(value) else round(value, 3)

    return {
        "median": shown(median),
        "p95": shown(ranked[rank]),
        "max": shown(ranked[-1]),
        "did_not_recover": sum(1 for v in ranked if math.isinf(v)),
    }


def buckets(times: Sequence[float], start: float, end: float, width_s: float) -> list[int]:
    """Counts per bucket of `width_s` seconds from start to end (for the report chart)."""
    n = max(1, math.ceil((end - start) / width_s))
    counts = [0] * n
    for t in times:
        if start <= t < end:
            counts[min(n - 1, int((t - start) / width_s))] += 1
    return counts
