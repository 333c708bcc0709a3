"""Turn `hastack drill run NAME --repeat N --json` outputs into the Markdown table of docs/drills.md.

    for s in kill-postmaster node-loss ...; do
        hastack drill run $s --repeat 10 --json > results/$s.json
    done
    python benchmarks/drill_table.py results/*.json

Per scenario: runs passed, write gap and RTO (median / p95 / max, seconds, through
DATABASE_URL), errors seen by the PgBouncer writer and by the direct (HAProxy) writer (median
/ max per run), lost acknowledged writes and split-brain runs over all runs.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _triple(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {_pct(values, 0.95):.2f} / {max(values):.2f}"


def _pair(values: list[int]) -> str:
    return f"{statistics.median(values):g} / {max(values)}"


def row(result: dict[str, Any]) -> str:
    runs = result["runs"]
    name = result["scenario"] + (" (no fencing)" if runs and not runs[0].get("fencing") else "")
    gaps = [r["write_gap_s"] for r in runs]
    rtos = [r["rto_s"] for r in runs]
    url_errors = [r["writers"].get("url", {}).get("errors", 0) for r in runs]
    direct_errors = [r["writers"].get("direct", {}).get("errors", 0) for r in runs]
    lost = sum(r["rpo_lost_acked_writes"] for r in runs)
    split = sum(1 for r in runs if r["split_brain"])
    passed = sum(1 for r in runs if r["passed"])
    return (
        f"| {name} | {passed}/{len(runs)} | {_triple(gaps)} | {_triple(rtos)} | "
        f"{_pair(url_errors)} | {_pair(direct_errors)} | {lost} | {split} |"
    )


HEADER = (
    "| scenario | passed | write gap s (median / p95 / max) | RTO s (median / p95 / max) | "
    "errors via PgBouncer (median / max) | errors via HAProxy direct (median / max) | "
    "lost acked writes | split-brain runs |\n|---|---|---|---|---|---|---|---|"
)


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    print(HEADER)
    skipped = 0
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            # An interrupted run leaves an empty file: say so, keep the rest of the table.
            print(f"skipped {path}: {exc}", file=sys.stderr)
            skipped += 1
            continue
        print(row(report))
    return 1 if skipped else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
