"""Spec problems, located in the file they came from."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from hastack.errors import HastackError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec: where (file, line, dotted key), what, and how to fix it."""

    key: str
    message: str
    fix: str = ""
    severity: Severity = "error"
    file: Path | None = None
    line: int | None = None
    related: tuple[str, ...] = ()
    """Other keys the problem involves; used for the line when `key` is not in the file."""

    def located(self, file: Path | None, line: int | None) -> SpecIssue:
        return replace(self, file=file, line=line)

    def format(self) -> str:
        where = str(self.file) if self.file else "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        key = f"{self.key}: " if self.key else ""
        label = "warning: " if self.severity == "warning" else ""
        text = f"{where}: {label}{key}{self.message}"
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": str(self.file) if self.file else None,
            "line": self.line,
            "key": self.key,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
        }


class SpecError(HastackError):
    """The spec cannot be used. `issues` holds every error found (and any warnings)."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        errors = sum(1 for i in issues if i.severity == "error")
        where = next((str(i.file) for i in issues if i.file), "the spec")
        super().__init__(
            f"{errors} problem(s) in {where}; nothing was changed",
            "fix them, then `hastack check` again",
            [line for i in issues for line in i.format().splitlines()],
        )

    @property
    def errors(self) -> list[SpecIssue]:
        return [i for i in self.issues if i.severity == "error"]
