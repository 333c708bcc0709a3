"""`hastack render TARGET --out DIR`: the stack for another engine, written as one step."""

from __future__ import annotations

from pathlib import Path

from hastack.runtime.target_render import RenderResult, render_target
from hastack.spec.plan import StackPlan

__all__ = ["RenderResult", "render"]


def render(plan: StackPlan, target: str, out: Path) -> RenderResult:
    """Write `plan` rendered for `target` into `out`, keeping the stack's secrets and CA in
    its state directory (made on first use, as by `hastack up`)."""
    return render_target(plan, target, out)
