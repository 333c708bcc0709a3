"""pgbench: initialise and run the standard workloads, parse what it reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hastack.tools.base import ToolError, run

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
_TXNS = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    options: str = ""
    """libpq `options` (e.g. `-c role=app_owner`); not for PgBouncer, which rejects it."""
    sslmode: str = ""
    """libpq `sslmode` (`verify-full` with `sslrootcert`, or `disable`); libpq's default
    when empty."""
    sslrootcert: str = ""

    def env(self) -> dict[str, str]:
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGDATABASE": self.dbname,
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGCONNECT_TIMEOUT": "5",
        }
        if self.options:
            env["PGOPTIONS"] = self.options
        if self.sslmode:
            env["PGSSLMODE"] = self.sslmode
        if self.sslrootcert:
            env["PGSSLROOTCERT"] = self.sslrootcert
        return env


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_avg_ms: float
    transactions: int
    failed: int


def parse_output(text: str) -> PgbenchResult:
    tps, latency, txns = _TPS.search(text), _LATENCY.search(text), _TXNS.search(text)
    if not (tps and latency and txns):
        raise ValueError("pgbench printed no summary")
    failed = _FAILED.search(text)
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_avg_ms=float(latency.group(1)),
        transactions=int(txns.group(1)),
        failed=int(failed.group(1)) if failed else 0,
    )


class PgBench:
    """PostgreSQL's pgbench, from the stack's PostgreSQL bin directory."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    endpoint = Endpoint
    """Where a run connects (host, port, dbname, user, password[, options])."""

    def initialise(self, endpoint: Endpoint, scale: int) -> None:
        result = run(
            [str(self.binary), "-i", "-q", "-s", str(scale), "--foreign-keys"],
            env=endpoint.env(),
            timeout_s=600,
        )
        if not result.ok:
            raise ToolError("pgbench -i failed", result)

    def run_workload(
        self,
        endpoint: Endpoint,
        *,
        select_only: bool,
        clients: int,
        threads: int,
        duration_s: int,
    ) -> PgbenchResult:
        """One run; -n because the app role may not VACUUM, -M simple because transaction
        pooling cannot keep prepared statements."""
        argv = [str(self.binary), "-n", "-M", "simple", "-c", str(clients), "-j", str(threads)]
        argv += ["-T", str(duration_s)]
        if select_only:
            argv.append("-S")
        result = run(argv, env=endpoint.env(), timeout_s=duration_s + 120)
        if not result.ok:
            raise ToolError("pgbench run failed", result)
        return parse_output(result.stdout)
