"""Text views of plans, results and status."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.markup import escape

from hastack.cli.output import out, table
from hastack.ops.bench import IdleReport, PgBenchReport
from hastack.ops.bench_http import HttpBenchReport
from hastack.ops.deploy import DeployResult
from hastack.ops.lifecycle import StopResult
from hastack.ops.plan import plan_sections
from hastack.ops.status import StackStatus
from hastack.ops.up import UpResult
from hastack.spec import roles
from hastack.spec.connection import mask
from hastack.spec.plan import StackPlan

HEALTH_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "down": "bold red"}


def print_plan(plan: StackPlan) -> None:
    out.print(f"[bold]stack {plan.name}[/]  state: {plan.paths.state_dir}")
    for name, rows in plan_sections(plan).items():
        out.print()
        out.print(
            table(name, ["key", "value", "derived from"], [[r.key, r.value, r.how] for r in rows])
        )


def up_result_dict(result: UpResult) -> dict[str, Any]:
    data = asdict(result)
    data["nothing_changed"] = result.nothing_changed
    return data


def print_up_summary(
    plan: StackPlan, result: UpResult, status: StackStatus, urls: dict[str, str]
) -> None:
    health = status.health
    style = HEALTH_STYLE[health]
    if result.nothing_changed:
        out.print(
            f"stack [bold]{plan.name}[/] was already up: nothing changed "
            f"([{style}]{health}[/], checked in {result.elapsed_s:.1f} s)"
        )
    else:
        out.print(
            f"stack [bold]{plan.name}[/] is up in {result.elapsed_s:.1f} s: [{style}]{health}[/]"
        )
    _print_roles(status)
    for line in result.adopted:
        out.print(f"  took over from a dead supervisord: {line}", markup=False)
    _print_where(plan, status, urls, applied_spec=True)


def print_deploy_summary(
    plan: StackPlan, result: DeployResult, status: StackStatus, urls: dict[str, str]
) -> None:
    style = HEALTH_STYLE[status.health]
    out.print(
        f"stack [bold]{plan.name}[/] is deployed on {result.target} (engine {result.engine}) "
        f"in {result.elapsed_s:.1f} s: [{style}]{status.health}[/]"
    )
    out.print(
        f"  image {result.image} (built in {result.image_build_s:.1f} s); {result.services} "
        f"services healthy {result.healthy_after_s:.1f} s after deploy",
        markup=False,
    )
    for line in result.said:
        out.print(f"  {line}", markup=False)
    _print_roles(status)
    _print_where(plan, status, urls, applied_spec=False)


def _print_where(
    plan: StackPlan, status: StackStatus, urls: dict[str, str], *, applied_spec: bool
) -> None:
    for problem in status.assessment.problems:
        out.print(f"  [yellow]-[/] {problem}")
    out.print()
    for key, url in urls.items():
        out.print(f"  {key:20} {mask(url)}", markup=False)
    if plan.app_instances:
        out.print(f"  {'CA certificate':20} {plan.paths.ca_cert} (curl --cacert ...)", markup=False)
    hap = plan.spec.haproxy
    out.print(
        f"  {'HAProxy stats':20} https://{plan.services_address}:{hap.stats_port}/ "
        f"(user {roles.HAPROXY_STATS}), metrics at /metrics (same login)",
        markup=False,
    )
    if plan.monitoring_enabled:
        out.print(
            f"  {'monitoring login':20} user hastack, password: hastack secrets show "
            "monitoring_password (Prometheus, Alertmanager and the dashboard above)",
            markup=False,
        )
    out.print(f"  {'state':20} {plan.paths.state_dir}", markup=False)
    if applied_spec:
        out.print(
            f"  {'applied spec':20} {plan.paths.applied_spec} (the installed CLI: "
            f"hastack -c {plan.paths.applied_spec} ...)",
            markup=False,
        )
    out.print()
    out.print("  full connection settings:  hastack env   (eval $(hastack env))", markup=False)
    out.print(
        "  secrets:                   hastack secrets list | show NAME | rotate NAME", markup=False
    )
    out.print("  health:                    hastack status", markup=False)


def _print_roles(status: StackStatus) -> None:
    members = status.snapshot.members
    roles_line = " · ".join(f"{m.name} {m.role.replace('_', ' ')}" for m in members)
    if roles_line:
        out.print(f"  {roles_line}", markup=False)


def print_status(status: StackStatus) -> None:
    snap = status.snapshot
    style = HEALTH_STYLE[status.health]
    out.print(f"stack [bold]{snap.plan.name}[/]: [{style}]{status.health}[/]")
    out.print(
        table(
            "postgres",
            ["name", "host", "port", "role", "state", "timeline", "lag_bytes", "pid"],
            [
                [
                    m.name,
                    m.host,
                    str(m.port),
                    m.role,
                    m.state,
                    _opt(m.timeline),
                    _opt(m.lag_bytes),
                    _opt(m.pid),
                ]
                for m in snap.members
            ],
        )
    )
    out.print(
        table(
            "etcd",
            ["name", "url", "healthy", "leader"],
            [[e.name, e.url, _yes(e.healthy), _yes(e.leader)] for e in snap.etcd],
        )
    )
    if snap.haproxy_error:
        out.print(f"[bold]haproxy[/]: [red]{snap.haproxy_error}[/]")
    else:
        out.print(
            table(
                "haproxy",
                ["backend", "server", "status", "sessions"],
                [[s.backend, s.server, s.status, str(s.sessions)] for s in snap.haproxy],
            )
        )
    if snap.pgbouncer.ok:
        pools = snap.pgbouncer.detail.get("pools", [])
        out.print(
            table(
                "pgbouncer pools",
                ["database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle"],
                [
                    [
                        p["database"],
                        p["user"],
                        str(p["cl_active"]),
                        str(p["cl_waiting"]),
                        str(p["sv_active"]),
                        str(p["sv_idle"]),
                    ]
                    for p in pools
                ]
                or [["(no pool in use yet)", "", "", "", "", ""]],
            )
        )
    else:
        out.print(f"[bold]pgbouncer[/]: [red]{snap.pgbouncer.error}[/]")
    if snap.app:
        out.print(
            table(
                "app",
                ["instance", "url", "ready", "haproxy"],
                [[a.name, a.url, _yes(a.ready), a.haproxy or "-"] for a in snap.app],
            )
        )
    if snap.redis.ok:
        used = snap.redis.detail.get("used_memory_bytes") or 0
        cap = snap.redis.detail.get("maxmemory_bytes") or 0
        out.print(
            f"[bold]redis[/]: ok, {used / 1048576:.1f} of {cap / 1048576:.0f} MiB, "
            f"{snap.redis.detail.get('maxmemory_policy')}"
        )
    else:
        out.print(f"[bold]redis[/]: [red]{snap.redis.error}[/]")
    _print_watcher(status)
    _print_backups(status)
    _print_standby(status)
    for problem in status.assessment.problems:
        out.print(f"  [yellow]-[/] {problem}", markup=True)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_standby(status: StackStatus) -> None:
    sb = status.standby
    if sb is None:
        return
    if sb.get("lag_bytes") is not None:
        delay = sb.get("replay_lag_s")
        lag = f"{sb['lag_bytes']} bytes behind" + (f", replay lag {delay} s" if delay else "")
    else:
        lag = f"[yellow]{sb.get('error')}[/]"
    out.print(f"[bold]standby cluster[/] of {sb['primary']}: {lag}; `hastack promote-standby`")


def _print_backups(status: StackStatus) -> None:
    backups = status.backups
    if backups is None:
        return
    parts = []
    if backups.info is not None:
        for kind in ("full", "diff", "incr"):
            b = backups.info.last(kind)
            if b is not None:
                verified = ", verified" if b.verified_at else ""
                parts.append(f"{kind} {_age(backups.now - b.stop)} ago{verified}")
    out.print(
        "[bold]backups[/]: " + (escape("; ".join(parts)) if parts else "none yet"), markup=True
    )
    archive = backups.archive
    if archive is not None:
        at = archive.last_archived_at
        when = f"{_age(backups.now - at)} ago" if at else "never"
        state = "[red]failing[/]" if archive.failing else "ok"
        pending = archive.unarchived_bytes
        behind = "" if pending is None else f", {pending / 1024:.0f} KiB of WAL past it"
        out.print(
            f"  WAL archive: {state}, last {escape(archive.last_archived_wal or '-')} "
            f"{when}{behind}",
            markup=True,
        )
    scheduler = backups.scheduler
    if scheduler is not None and scheduler.get("last_decision"):
        out.print(f"  scheduler: {scheduler['last_decision']}", markup=False)


def _print_watcher(status: StackStatus) -> None:
    view = status.snapshot.watcher
    if view is None:
        return
    beat = view.heartbeat
    if beat is not None and beat.last_poll_at is not None:
        age = view.now - beat.last_poll_at
        errors = f", {beat.failed_polls} failed polls" if beat.failed_polls else ""
        out.print(
            f"[bold]watcher[/]: last poll {age:.1f} s ago ({beat.polls} polls{errors})",
            markup=True,
        )
        if beat.last_error:
            out.print(f"  last error: {beat.last_error}", markup=False)
        if beat.fenced:
            out.print(f"  fenced, not back yet: {', '.join(beat.fenced)}", markup=False)
    for hold in view.holds:
        out.print(f"  hold: {hold.sentence(view.now)}", markup=False)
    if status.decisions:
        last = status.decisions[-1]
        out.print(f"  last decision: {last['time']} {last['sentence']}", markup=False)


def print_stop(name: str, verb: str, stop: StopResult) -> None:
    out.print(f"stack {name!r} {verb} in {stop.elapsed_s:.1f} s (order: {', '.join(stop.order)})")
    if stop.postgres_stopped_by_pg_ctl:
        out.print(f"  PostgreSQL outlived Patroni on {stop.postgres_stopped_by_pg_ctl}; stopped it")
    if stop.leftovers_killed:
        out.print(f"  killed leftover processes: {', '.join(stop.leftovers_killed)}")


def _opt(value: object) -> str:
    return "-" if value is None else str(value)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def print_pg_bench(report: PgBenchReport) -> None:
    out.print(
        f"pgbench scale {report.scale}, {report.clients} clients, {report.threads} threads, "
        f"{report.duration_s} s per run, primary {report.leader}, {report.cpus} CPUs"
    )
    rows = [
        [
            r.workload,
            r.path,
            r.endpoint,
            f"{r.tps:,.0f}",
            f"{r.latency_avg_ms:.2f}",
            f"{report.ratio(r.workload, r.path):.2f}x",
            _tls_cost(report.tls_ratio(r.workload, r.path)),
            str(r.failed),
        ]
        for r in report.results
    ]
    out.print(
        table(
            "transactions per second",
            [
                "workload",
                "path",
                "endpoint",
                "tps",
                "latency ms",
                "vs direct",
                "vs no TLS",
                "failed",
            ],
            rows,
        )
    )
    if report.plaintext_refused:
        out.print(
            "no 'no-tls' rows: the stack refuses clients without TLS (postgres.require_tls); "
            "to measure what TLS costs, bench a stack with require_tls: false"
        )


def _tls_cost(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"


def print_idle(report: IdleReport) -> None:
    rows = [
        [c.component, str(c.processes), f"{c.pss_mib:.1f}", f"{c.cpu_percent:.2f}"]
        for c in report.components
    ]
    rows.append(["total", "", f"{report.total_pss_mib:.1f}", f"{report.total_cpu_percent:.2f}"])
    out.print(
        table(
            f"idle footprint over {report.window_s:.0f} s",
            ["component", "processes", "PSS MiB", "CPU % of one core"],
            rows,
        )
    )


def print_http_bench(report: HttpBenchReport) -> None:
    rows = [
        [
            label,
            str(r.connections),
            f"{r.requests_per_s:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p95_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.non_2xx + r.socket_errors),
        ]
        for label, r in report.results.items()
    ]
    out.print(
        table(
            f"HTTP ({report.duration_s} s per run, wrk)",
            ["path", "conns", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
            rows,
        )
    )
    for key, value in report.summary().items():
        out.print(f"  {key}: {value}", markup=False)
