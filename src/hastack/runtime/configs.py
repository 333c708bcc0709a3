"""Every config file of a stack, rendered, checked by the program that reads it, then written
atomically: a bad spec never leaves a half-applied stack."""

from __future__ import annotations

from hastack.render.files import RenderedFile, render_stack
from hastack.runtime.files import write_atomic
from hastack.runtime.validate import validate_rendered
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import Secrets

__all__ = ["RenderedFile", "write_configs"]


def write_configs(plan: StackPlan, secrets: Secrets) -> tuple[list[RenderedFile], int]:
    """(the files that changed, how many files there are). Nothing is written unless every
    file passed its check (`haproxy -c`, `patroni --validate-config`, a PgBouncer dry
    start)."""
    files = render_stack(plan, secrets)
    validate_rendered(plan, files, dcs_running=False)
    changed = [f for f in files if write_atomic(f.path, f.content, f.owner, f.mode)]
    return changed, len(files)
