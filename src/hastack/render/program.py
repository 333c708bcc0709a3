"""A supervised process, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Program:
    """One supervised process."""

    name: str
    """Unique program name, e.g. `pg1-patroni`."""
    group: str
    """Supervisor group: the node name, or the service name for shared services."""
    component: str
    """etcd, patroni, haproxy, pgbouncer or redis."""
    argv: tuple[str, ...]
    user: str
    directory: Path
    log_file: Path
    environment: dict[str, str] = field(default_factory=dict)
    stop_signal: str = "TERM"
    stop_wait_s: int = 10
    start_secs: int = 1
    start_retries: int = 1000

    @property
    def process_name(self) -> str:
        """The `group:name` supervisor's XML-RPC API expects."""
        return f"{self.group}:{self.name}"
