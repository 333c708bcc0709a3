"""The one error type for expected failures: what happened and what to run next.

Every failure a user can cause or meet in normal operation (a bad spec, a port in use, a stack
that is not up, a component that does not answer, a deadline missed) is a `HastackError`. The
CLI catches this one type and prints `error: <what>` and `next: <hint>`; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class HastackError(Exception):
    """An expected failure.

    `what`: one sentence naming the component or node and what went wrong.
    `hint`: what to run or change next (empty when there is nothing useful to say).
    `details`: lines shown under the sentence (every problem of a spec, a program's output).
    """

    def __init__(self, what: str, hint: str = "", details: Sequence[str] = ()) -> None:
        self.what = what
        self.hint = hint
        self.details = tuple(details)
        lines = [what, *(f"  {d}" for d in self.details)]
        if hint:
            lines.append(f"  next: {hint}")
        super().__init__("\n".join(lines))


class Unavailable(HastackError):
    """A component of the stack did not answer (etcd, Patroni, HAProxy, PgBouncer, Redis)."""
