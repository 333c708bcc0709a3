"""Pure renderers: (plan, secrets) -> text of every config file. No I/O, no processes."""

from hastack.render.files import RenderedFile, render_stack
from hastack.render.programs import Program, stack_programs
from hastack.spec.secrets import Secrets

__all__ = ["Program", "RenderedFile", "Secrets", "render_stack", "stack_programs"]
