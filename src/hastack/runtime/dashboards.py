"""Writing the generated Grafana dashboards (render/dashboards.py) where an operator asks."""

from __future__ import annotations

from pathlib import Path

from hastack.errors import HastackError
from hastack.render.dashboards import render_dashboards
from hastack.runtime.files import write_atomic
from hastack.spec.plan import StackPlan


def write_dashboards(plan: StackPlan, out: Path) -> list[Path]:
    """Every dashboard as `<out>/hastack-<layer>.json` (the directory is created; files of
    the same name are replaced atomically, nothing else in it is touched)."""
    if out.exists() and not out.is_dir():
        raise HastackError(f"{out} exists and is not a directory", "choose another --out")
    if not out.parent.is_dir():
        raise HastackError(f"{out.parent} does not exist", "create it, or choose another --out")
    out.mkdir(mode=0o755, exist_ok=True)
    written = []
    for name, text in render_dashboards(plan.name).items():
        write_atomic(out / name, text, "root", 0o644)
        written.append(out / name)
    return written
