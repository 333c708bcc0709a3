"""pg_amcheck: heap and B-tree checks (amcheck) of every database of an instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hastack.tools.base import ToolResult, run


@dataclass(frozen=True)
class PgAmcheck:
    bin_dir: Path
    user: str | None = None

    def check_all(self, host: str, port: int, dbuser: str, jobs: int = 2) -> ToolResult:
        """Every table and B-tree index of every database; `--heapallindexed`: each heap
        tuple must be found in each index. Installs the amcheck extension where missing
        (the instance checked is a throwaway restore). Exit 0: no corruption found."""
        argv = [
            str(self.bin_dir / "pg_amcheck"),
            f"--host={host}",
            f"--port={port}",
            f"--username={dbuser}",
            "--all",
            "--heapallindexed",
            "--install-missing",
            f"--jobs={jobs}",
        ]
        return run(argv, timeout_s=3600, user=self.user)
