"""Running external programs: argv in, a typed result with its context out."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 15) -> str:
        """The last lines of stderr (or stdout when stderr is empty), for error messages."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


class ToolError(Exception):
    """An external program failed; carries the command, exit code and the tail of its output."""

    def __init__(self, what: str, result: ToolResult | None = None, hint: str = "") -> None:
        self.what = what
        self.result = result
        self.hint = hint
        parts = [what]
        if result is not None:
            parts.append(f"  command: {' '.join(result.argv)} (exit {result.returncode})")
            tail = result.tail()
            if tail:
                parts.append("  output:\n" + "\n".join("    " + ln for ln in tail.splitlines()))
        if hint:
            parts.append(f"  next: {hint}")
        super().__init__("\n".join(parts))


def run(
    argv: Sequence[str],
    *,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    user: str | None = None,
) -> ToolResult:
    """Run a program to completion (as `user` if given). Never raises for a non-zero exit;
    check `.ok`."""
    full_env = {**os.environ, **(env or {})}
    start = time.monotonic()
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=full_env,
            input=input_text,
            check=False,
            user=user,
        )
    except FileNotFoundError:
        return ToolResult(tuple(argv), 127, "", f"{argv[0]}: not found", 0.0)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return ToolResult(
            tuple(argv), 124, out, err + f"\ntimed out after {timeout_s:.0f} s", timeout_s
        )
    return ToolResult(
        tuple(argv), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start
    )


def run_checked(argv: Sequence[str], what: str, hint: str = "", **kwargs: object) -> ToolResult:
    result = run(argv, **kwargs)  # type: ignore[arg-type]
    if not result.ok:
        raise ToolError(what, result, hint)
    return result
