"""Turn `hastack drill run NAME --repeat N --json` outputs into the table of docs/drills.md.

    for s in kill-postmaster node-loss ...; do
        hastack drill run $s --repeat 10 --json > results/$s.json
    done
    python3 benchmarks/drill_table.py results/*.json

Per scenario: runs passed (every run counts: one that errored or never recovered is a failed
run), write gap and RTO (median / p95 / max, seconds), healthy again (fault -> healthy with
every node streaming), errors seen by the PgBouncer writer and by the direct (HAProxy) writer
(median / max per run), lost acknowledged writes and split-brain runs over all runs. A run that
never recovered ranks above every number and shows as "did not recover".
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

DNR = "did not recover"


def _rank(values: list[float | None]) -> list[float]:
    return sorted(math.inf if v is None else float(v) for v in values)


def _show(value: float) -> str:
    return DNR if math.isinf(value) else f"{value:.2f}"


def _triple(values: list[float | None]) -> str:
    """median / p95 (nearest rank) / max over every run."""
    ranked = _rank(values)
    if not ranked:
        return "-"
    median = (
        statistics.median(ranked) if not any(map(math.isinf, ranked)) else ranked[len(ranked) // 2]
    )
    p95 = ranked[max(0, math.ceil(0.95 * len(ranked)) - 1)]
    return f"{_show(median)} / {_show(p95)} / {_show(ranked[-1])}"


def _pair(values: list[int]) -> str:
    return f"{statistics.median(values):g} / {max(values)}" if values else "-"


def _runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A `--repeat N` summary holds `runs`; a single run's report is the run itself."""
    return list(result["runs"]) if "runs" in result else [result]


def row(result: dict[str, Any]) -> str:
    runs = _runs(result)
    scenario = runs[0]["scenario"]
    name = scenario + (" (no fencing)" if runs and not runs[0].get("fencing") else "")
    gaps = [r["write_gap_s"] for r in runs]
    rtos = [r["rto_s"] for r in runs]
    healthy = [r.get("healthy_again_s") for r in runs]
    url_errors = [r["writers"].get("url", {}).get("errors", 0) for r in runs]
    direct_errors = [r["writers"].get("direct", {}).get("errors", 0) for r in runs]
    lost = sum(r["rpo_lost_acked_writes"] for r in runs)
    split = sum(1 for r in runs if r["split_brain"])
    passed = sum(1 for r in runs if r["passed"])
    return (
        f"| {name} | {passed}/{len(runs)} | {_triple(gaps)} | {_triple(rtos)} | "
        f"{_triple(healthy)} | {_pair(url_errors)} | {_pair(direct_errors)} | {lost} | {split} |"
    )


def _http_errors(run: dict[str, Any], prefix: str) -> int:
    return sum(w.get("errors", 0) for name, w in run["writers"].items() if name.startswith(prefix))


def _wrk_requests(run: dict[str, Any]) -> int | None:
    """wrk's request count, from the expectation that checked it (web drills at volume)."""
    for expectation in run.get("expectations", []):
        found = re.search(r"wrk: .* in (\d+) requests", expectation["what"])
        if found:
            return int(found.group(1))
    return None


def web_row(result: dict[str, Any]) -> str:
    """A web drill: POST gap, failed GETs and POSTs, wrk's volume, healthy again."""
    runs = _runs(result)
    passed = sum(1 for r in runs if r["passed"])
    gaps = [r["write_gap_s"] for r in runs]
    healthy = [r.get("healthy_again_s") for r in runs]
    gets = [_http_errors(r, "http-get") for r in runs]
    posts = [_http_errors(r, "http-post") for r in runs]
    wrk = [n for n in map(_wrk_requests, runs) if n is not None]
    lost = sum(r["rpo_lost_acked_writes"] for r in runs)
    split = sum(1 for r in runs if r["split_brain"])
    volume = f"{sum(wrk):,} ({len(wrk)} runs)" if wrk else "-"
    return (
        f"| {runs[0]['scenario']} | {passed}/{len(runs)} | {_triple(gaps)} | "
        f"{_triple(healthy)} | {sum(gets)} | {_pair(posts)} | {volume} | {lost} | {split} |"
    )


WEB_HEADER = (
    "| drill | passed | POST gap s (median / p95 / max) | healthy again s (median / p95 / max) "
    "| failed GETs (all runs) | failed POSTs (median / max) | wrk requests (all runs) "
    "| lost acked writes | split-brain runs |\n"
    "|---|---|---|---|---|---|---|---|---|"
)

HEADER = (
    "| scenario | passed | write gap s (median / p95 / max) | RTO s (median / p95 / max) | "
    "healthy again s (median / p95 / max) | errors via PgBouncer (median / max) | "
    "errors via HAProxy direct (median / max) | lost acked writes | split-brain runs |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def failures(result: dict[str, Any]) -> list[str]:
    """Why runs failed, one line per distinct reason, for the text under the table."""
    reasons = sorted({reason for r in _runs(result) for reason in r["failure_reasons"]})
    return [f"{_runs(result)[0]['scenario']}: {reason}" for reason in reasons]


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    skipped = 0
    notes: list[str] = []
    data_rows: list[str] = []
    web_rows: list[str] = []
    for path in paths:
        try:
            result = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            # An interrupted run leaves an empty file: say so, keep the rest of the table.
            print(f"skipped {path}: {exc}", file=sys.stderr)
            skipped += 1
            continue
        if _runs(result)[0].get("tier") == "web":
            web_rows.append(web_row(result))
        else:
            data_rows.append(row(result))
        notes += failures(result)
    for header, rows in ((HEADER, data_rows), (WEB_HEADER, web_rows)):
        if rows:
            print(header)
            print("\n".join(rows))
            print()
    for note in notes:
        print(f"\n- failed run: {note}")
    return 1 if skipped else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
