"""pg_ctl: start and stop a PostgreSQL data directory outside Patroni (scratch restores)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hastack.tools.base import ToolResult, run


def _quote(value: str) -> str:
    """A value inside pg_ctl's `-o` string (pg_ctl runs the server through /bin/sh)."""
    if "'" in value or "\\" in value:
        raise ValueError(f"cannot pass {value!r} through pg_ctl -o")
    return f"'{value}'"


@dataclass(frozen=True)
class PgCtl:
    bin_dir: Path
    user: str | None = None
    netns: str | None = None
    """The network namespace of the host it runs on, when the hosts are simulated here."""

    def start(
        self, pgdata: Path, log_file: Path, settings: Mapping[str, str], timeout_s: int = 120
    ) -> ToolResult:
        """Start and wait until it accepts connections (or has failed)."""
        options = " ".join(f"-c {name}={_quote(value)}" for name, value in settings.items())
        argv = [
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-D",
            str(pgdata),
            "-l",
            str(log_file),
            "-w",
            "-t",
            str(timeout_s),
            "-o",
            options,
        ]
        return run(argv, timeout_s=timeout_s + 10, user=self.user, netns=self.netns)

    def stop(self, pgdata: Path, timeout_s: int = 60) -> ToolResult:
        argv = [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast", "-w"]
        return run(
            [*argv, "-t", str(timeout_s)],
            timeout_s=timeout_s + 10,
            user=self.user,
            netns=self.netns,
        )

    def status(self, pgdata: Path) -> ToolResult:
        """Exit 0: running; 3: not running; 4: no data directory."""
        return run(
            [str(self.bin_dir / "pg_ctl"), "status", "-D", str(pgdata)],
            user=self.user,
            netns=self.netns,
        )
