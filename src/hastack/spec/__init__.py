"""The stack model: load, validate and derive everything from `hastack.yaml`."""

from hastack.spec.checks import MachineFacts
from hastack.spec.errors import SpecError, SpecIssue
from hastack.spec.example import example_spec
from hastack.spec.loader import LoadedSpec, load_spec
from hastack.spec.model import StackSpec
from hastack.spec.plan import Node, StackPaths, StackPlan, derive_plan

__all__ = [
    "LoadedSpec",
    "MachineFacts",
    "Node",
    "SpecError",
    "SpecIssue",
    "StackPaths",
    "StackPlan",
    "StackSpec",
    "derive_plan",
    "example_spec",
    "load_spec",
]
