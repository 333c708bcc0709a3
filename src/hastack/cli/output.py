"""Formatting for the CLI: tables, progress lines, errors. The only place that prints."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from hastack.errors import HastackError


def _console(stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        # Piped or captured output: rich would assume 80 columns and fold table cells.
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=200)
    return console


out = _console(stderr=False)
err = _console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_json_line(data: Any) -> None:
    """One JSON object on one line (a stream a script reads as it comes)."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, hint: str = "", details: tuple[str, ...] = ()) -> None:
    err.print("[bold red]error:[/] ", end="", markup=True)
    err.print(message, markup=False)
    for line in details:
        err.print(f"  {line}", markup=False)
    if hint:
        err.print(f"  next: {hint}", markup=False)


def print_error(exc: HastackError) -> None:
    """`error: <what>`, its details, `next: <hint>`: how every expected failure looks."""
    fail(exc.what, exc.hint, exc.details)


class ConsoleProgress:
    """Progress of long operations on stderr, so stdout stays clean for --json."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.t0 = time.monotonic()

    def step(self, message: str) -> None:
        if not self.quiet:
            err.print(f"  [dim]{time.monotonic() - self.t0:5.1f}s[/] … {message}", markup=True)

    def done(self, message: str) -> None:
        if not self.quiet:
            err.print(f"  [dim]{time.monotonic() - self.t0:5.1f}s[/] [green]✓[/] {message}")


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", show_edge=False)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t
