"""Benchmarks that print numbers: pgbench through each path, the idle footprint."""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass, field
from typing import Any

import psutil
import psycopg

from hastack.errors import HastackError
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack
from hastack.spec import roles

PGBENCH_TABLES = ("pgbench_history", "pgbench_tellers", "pgbench_accounts", "pgbench_branches")


@dataclass(frozen=True)
class PathResult:
    workload: str
    path: str
    endpoint: str
    tps: float
    latency_avg_ms: float
    transactions: int
    failed: int


@dataclass
class PgBenchReport:
    scale: int
    clients: int
    threads: int
    duration_s: int
    leader: str
    cpus: int
    plaintext_refused: bool = False
    """The stack refuses clients without TLS (postgres.require_tls): no " no-tls" rows."""
    results: list[PathResult] = field(default_factory=list)

    def ratio(self, workload: str, path: str, base: str = "direct") -> float:
        tps = {r.path: r.tps for r in self.results if r.workload == workload}
        return tps[path] / tps[base] if tps.get(base) else 0.0

    def tls_ratio(self, workload: str, path: str) -> float | None:
        """A TLS path's throughput relative to the same path without TLS (same run)."""
        if path.endswith(NO_TLS):
            return None
        return self.ratio(workload, path, base=path + NO_TLS)


NO_TLS = " no-tls"


def bench_paths(stack: Stack, leader: str) -> dict[str, Any]:
    """The three ways an application can reach the primary, all as the `app` role, each with
    TLS (verify-full, as `hastack env`'s URLs) and, when the stack lets clients in without
    TLS (postgres.require_tls: false), without: what TLS costs, in the same run."""
    plan = stack.plan
    endpoint = stack.pgbench().endpoint
    db = plan.spec.postgres.database
    node = plan.node(leader)
    svc = plan.services_address
    app = (stack.secrets.app_login, stack.secrets.app_password)
    tls = {"sslmode": "verify-full", "sslrootcert": str(plan.paths.ca_cert)}
    plain = {"sslmode": "disable"}
    places = {
        "direct": (node.address, plan.spec.postgres.port),
        "haproxy": (svc, plan.spec.haproxy.rw_port),
        "pgbouncer": (svc, plan.spec.pgbouncer.port),
    }
    paths: dict[str, Any] = {}
    for name, (host, port) in places.items():
        paths[name] = endpoint(host, port, db, *app, **tls)
        if not plan.spec.postgres.require_tls:
            paths[name + NO_TLS] = endpoint(host, port, db, *app, **plain)
    return paths


def bench_pg(
    stack: Stack,
    *,
    scale: int = 10,
    clients: int = 20,
    duration_s: int = 15,
    progress: Progress | None = None,
) -> PgBenchReport:
    """pgbench select-only and TPC-B through every path, in one run, on the current primary.

    The pgbench tables are created in the application database (owned by app_owner, so the
    app role may use them) and dropped afterwards; an existing pgbench_accounts is refused."""
    progress = progress or NullProgress()
    plan = stack.plan
    leader = stack.leader()
    if leader is None:
        raise HastackError(f"stack {plan.name!r} has no leader", "hastack status")
    tool = stack.pgbench()
    refuse_existing_tables(stack, leader)
    report = PgBenchReport(
        scale=scale,
        clients=clients,
        threads=min(clients, psutil.cpu_count() or 1),
        duration_s=duration_s,
        leader=leader,
        cpus=psutil.cpu_count() or 1,
        plaintext_refused=plan.spec.postgres.require_tls,
    )
    try:
        progress.step(f"pgbench -i -s {scale} on {leader}")
        initialise_as_owner(stack, leader, scale)
        for workload, select_only in (("select-only", True), ("tpc-b", False)):
            for path, endpoint in bench_paths(stack, leader).items():
                progress.step(f"{workload} via {path} ({duration_s} s, {clients} clients)")
                result = tool.run_workload(
                    endpoint,
                    select_only=select_only,
                    clients=clients,
                    threads=report.threads,
                    duration_s=duration_s,
                )
                report.results.append(
                    PathResult(
                        workload=workload,
                        path=path,
                        endpoint=f"{endpoint.host}:{endpoint.port}",
                        tps=result.tps,
                        latency_avg_ms=result.latency_avg_ms,
                        transactions=result.transactions,
                        failed=result.failed,
                    )
                )
                progress.done(f"{workload} via {path}: {result.tps:.0f} tps")
    finally:
        drop_tables(stack, leader)
    return report


def initialise_as_owner(stack: Stack, leader: str, scale: int) -> None:
    """pgbench's tables in the application database, owned by app_owner (the app role may
    use them), created through the leader's socket (the superuser's only way in)."""
    plan = stack.plan
    tool = stack.pgbench()
    owner = tool.endpoint(
        str(plan.node(leader).paths.socket_dir),
        plan.spec.postgres.port,
        plan.spec.postgres.database,
        roles.SUPERUSER,
        stack.secrets.postgres_password,
        options=f"-c role={roles.OWNER}",
    )
    tool.initialise(owner, scale)


def refuse_existing_tables(stack: Stack, leader: str) -> None:
    with stack.connect(leader) as conn:
        row = conn.execute("SELECT to_regclass('public.pgbench_accounts')").fetchone()
    if row and row[0] is not None:
        db = stack.plan.spec.postgres.database
        raise HastackError(
            f"database {db!r} already has pgbench tables",
            "drop them first (hastack bench creates and drops its own)",
        )


def drop_tables(stack: Stack, leader: str) -> None:
    try:
        with stack.connect(leader) as conn:
            conn.execute("DROP TABLE IF EXISTS " + ", ".join(PGBENCH_TABLES))
    except (psycopg.Error, HastackError):
        pass  # the report matters more; a failover mid-bench leaves them for the next run


@dataclass(frozen=True)
class ComponentFootprint:
    component: str
    processes: int
    pss_mib: float
    cpu_percent: float
    """Percent of one core over the measurement window."""


@dataclass
class IdleReport:
    window_s: float
    components: list[ComponentFootprint]
    machine: str = field(default_factory=platform.platform)

    @property
    def total_pss_mib(self) -> float:
        return round(sum(c.pss_mib for c in self.components), 1)

    @property
    def total_cpu_percent(self) -> float:
        return round(sum(c.cpu_percent for c in self.components), 2)


def _component(proc: psutil.Process) -> str:
    name = proc.name()
    if name in ("postgres", "postmaster"):
        return "postgres"
    if name == "redis-server":
        return "redis"
    cmd = " ".join(proc.cmdline())
    if "patroni" in cmd:
        return "patroni"
    return name


def idle_footprint(stack: Stack, window_s: float = 10.0) -> IdleReport:
    """Memory (PSS: shared pages split between sharers) and CPU of every stack process,
    supervisord included, over `window_s` seconds."""
    procs = stack.processes()
    sup_pid = stack.supervisor.pid()
    if sup_pid:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(sup_pid))
    if not procs:
        raise HastackError(f"stack {stack.name!r} is not running", "hastack up")
    start = {}
    for proc in procs:
        try:
            start[proc.pid] = proc.cpu_times()
        except psutil.Error:
            continue
    stack.clock.sleep(window_s)
    totals: dict[str, list[float]] = {}
    for proc in procs:
        try:
            mem = proc.memory_full_info().pss / 1048576
            cpu = proc.cpu_times()
            before = start[proc.pid]
            used = (cpu.user + cpu.system) - (before.user + before.system)
            component = "supervisord" if proc.pid == sup_pid else _component(proc)
        except (psutil.Error, KeyError):
            continue
        entry = totals.setdefault(component, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += mem
        entry[2] += used / window_s * 100
    return IdleReport(
        window_s=window_s,
        components=[
            ComponentFootprint(name, int(n), round(pss, 1), round(cpu, 2))
            for name, (n, pss, cpu) in sorted(totals.items())
        ],
    )
