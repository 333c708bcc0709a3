"""`hastack secrets`: the one command that prints a secret."""

from __future__ import annotations

from hastack.ops.env import load_secrets_or_explain
from hastack.render.secrets import SECRET_PURPOSES
from hastack.spec.plan import StackPlan


class UnknownSecret(Exception):
    pass


def show_secret(plan: StackPlan, name: str) -> str:
    if name not in SECRET_PURPOSES:
        raise UnknownSecret(
            f"no secret named {name!r}; known: {', '.join(SECRET_PURPOSES)} "
            "(see `hastack secrets list`)"
        )
    value: str = getattr(load_secrets_or_explain(plan), name)
    return value
