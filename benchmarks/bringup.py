#!/usr/bin/env python3
"""Time from `hastack up` to a healthy stack: fresh (users, initdb, clones) and warm (after
`hastack down`). Uses its own stack (hsbench, 127.0.221.0/24) and destroys it afterwards.

    .venv/bin/python benchmarks/bringup.py [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """\
name: hsbench
state_dir: /var/lib/hastack/hsbench
network:
  subnet: 127.0.221.0/24
"""


def hastack(spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hastack", "-c", str(spec), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def timed_up(spec: Path) -> dict[str, object]:
    t0 = time.monotonic()
    result = hastack(spec, "up", "--json")
    wall = time.monotonic() - t0
    if result.returncode != 0:
        raise SystemExit(f"hastack up failed:\n{result.stderr}")
    data = json.loads(result.stdout)
    return {
        "wall_s": round(wall, 2),
        "up_s": data["up"]["elapsed_s"],
        "ready_at_s": data["up"]["ready_at_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "hastack.yaml"
        spec.write_text(SPEC)
        fresh, warm = [], []
        try:
            for _ in range(args.runs):
                hastack(spec, "destroy", "--yes")
                fresh.append(timed_up(spec))
                hastack(spec, "down")
                warm.append(timed_up(spec))
        finally:
            hastack(spec, "destroy", "--yes")
    report = {
        "fresh": fresh,
        "warm": warm,
        "fresh_median_s": statistics.median(r["up_s"] for r in fresh),  # type: ignore[misc]
        "warm_median_s": statistics.median(r["up_s"] for r in warm),  # type: ignore[misc]
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for kind in ("fresh", "warm"):
        runs = report[kind]
        print(f"{kind:6} up -> healthy (s): " + ", ".join(str(r["up_s"]) for r in runs))  # type: ignore[index, union-attr]
        print(f"{'':6} milestones of the last run: {runs[-1]['ready_at_s']}")  # type: ignore[index]
    print(f"median fresh {report['fresh_median_s']} s, warm {report['warm_median_s']} s")


if __name__ == "__main__":
    main()
