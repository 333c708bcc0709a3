"""`hastack dashboards`: the stack's Grafana dashboards as JSON files to import."""

from __future__ import annotations

from pathlib import Path

from hastack.runtime.dashboards import write_dashboards
from hastack.runtime.stack import Stack


def export_dashboards(stack: Stack, out: Path) -> list[Path]:
    return write_dashboards(stack.plan, out)
