"""`hastack secrets`: the one command that prints a secret."""

from __future__ import annotations

from hastack.errors import HastackError
from hastack.runtime.stack import Stack
from hastack.spec.secrets import SECRET_PURPOSES


def show_secret(stack: Stack, name: str) -> str:
    if name not in SECRET_PURPOSES:
        raise HastackError(
            f"no secret named {name!r}; known: {', '.join(SECRET_PURPOSES)}",
            "hastack secrets list",
        )
    value: str = getattr(stack.secrets, name)
    return value
