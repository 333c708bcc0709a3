"""hastack's commands. Each parses its options, calls one ops/runtime function and formats."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import typer
from rich.markup import escape
from typer.core import TyperGroup

from hastack import __version__
from hastack.cli import views
from hastack.cli.output import ConsoleProgress, err, out, print_error, print_json, print_json_line
from hastack.errors import HastackError
from hastack.ops.audit import audit as audit_stack
from hastack.ops.bench import bench_pg, idle_footprint
from hastack.ops.dashboards import export_dashboards
from hastack.ops.deploy import deploy
from hastack.ops.env import env_settings
from hastack.ops.init import write_example
from hastack.ops.lifecycle import destroy, down, restart
from hastack.ops.logmerge import parse_since
from hastack.ops.logs import every_log, follow, follow_many, log_files, merged_logs, printable, tail
from hastack.ops.plan import plan_as_dict
from hastack.ops.render import render
from hastack.ops.secrets import DEFAULT_GRACE_S, rotate_secret, show_secret
from hastack.ops.status import settled_status, stack_status
from hastack.ops.trust import refuse_untrusted_spec
from hastack.ops.up import up
from hastack.runtime.stack import Stack
from hastack.spec import LoadedSpec, MachineFacts, SpecError, load_spec
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import SECRET_PURPOSES

CONFIG_OPTIONS = ("-c", "--config")


def hoist_config(args: list[str]) -> list[str]:
    """Move `-c FILE` / `--config FILE` / `--config=FILE` to the front, so that the option is
    accepted after the subcommand too (`hastack check -c FILE` is what people type). Stops at
    `--`. Pure."""
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in CONFIG_OPTIONS and i + 1 < len(args):
            moved += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith("--config="):
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return moved + rest


class HoistConfigGroup(TyperGroup):
    # `ctx` is typer's vendored click Context (a private module): typed Any here.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_config(args))


app = typer.Typer(
    cls=HoistConfigGroup,
    help=(
        "Stand up, operate and prove a highly available stack: etcd x3, PostgreSQL x3 under "
        "Patroni, HAProxy, PgBouncer, Redis and the app instances, from one hastack.yaml.\n\n"
        "Start with `hastack init`, then `hastack up`. `hastack status` tells whether it is "
        "healthy; `hastack env` gives applications their connection settings."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
secrets_app = typer.Typer(help="The stack's generated secrets (the one place they are shown).")
app.add_typer(secrets_app, name="secrets")

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Expected failures (HastackError) become `error: ...` / `next: ...` and exit 1, never
    a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HastackError as exc:
            print_error(exc)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _config(ctx: typer.Context) -> Path:
    path: Path = ctx.obj["config"]
    return path


def _machine() -> MachineFacts:
    return MachineFacts(
        memory_mb=psutil.virtual_memory().total // (1024 * 1024), cpus=os.cpu_count() or 1
    )


def load_stack(ctx: typer.Context, *, machine: bool = False, acts: bool = True) -> LoadedSpec:
    """The spec, validated. `acts`: the command will act on the stack as root, so a spec
    another user could have written is refused (`check` and `plan` only read it)."""
    path = _config(ctx)
    if acts:
        refuse_untrusted_spec(path)
    loaded = load_spec(path, _machine() if machine else None)
    if acts and loaded.spec.standby_cluster is not None:
        # A standby takes its primary's secrets and trusts its CA, from where that spec says.
        refuse_untrusted_spec(loaded.spec.standby_cluster.primary)
    for warning in loaded.warnings:
        err.print(warning.format(), markup=False)
    return loaded


def stack_of(ctx: typer.Context, *, machine: bool = False) -> Stack:
    """The stack the spec describes (its file, -c or $HASTACK_CONFIG)."""
    return Stack(load_stack(ctx, machine=machine).plan)


def _version(value: bool) -> None:
    if value:
        out.print(f"hastack {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path = typer.Option(
        Path("hastack.yaml"),
        "-c",
        "--config",
        help="The stack spec (before or after the command).",
        envvar="HASTACK_CONFIG",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    ctx.obj = {"config": config}


@app.command()
@friendly_errors
def init(
    ctx: typer.Context,
    name: str = typer.Option("demo", help="Stack name."),
    force: bool = typer.Option(False, help="Overwrite an existing file."),
) -> None:
    """Write a commented example hastack.yaml with safe defaults."""
    path = _config(ctx)
    write_example(path, name, force)
    out.print(f"wrote {path}; next: `hastack check`, `hastack plan`, `hastack up`")


@app.command()
@friendly_errors
def check(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """Validate the spec: types, unknown keys, cross-field rules, fit on this machine."""
    try:
        loaded = load_spec(_config(ctx), _machine())
    except SpecError as exc:
        if json_out:
            print_json({"valid": False, "issues": [i.as_dict() for i in exc.issues]})
            raise typer.Exit(1) from None
        raise
    if json_out:
        print_json({"valid": True, "issues": [w.as_dict() for w in loaded.warnings]})
        return
    for warning in loaded.warnings:
        err.print(warning.format(), markup=False)
    out.print(f"{loaded.path}: valid (stack {loaded.spec.name!r})")


@app.command()
@friendly_errors
def plan(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """Show every value derived from the spec: addresses, users, memory, pools, timings."""
    loaded = load_stack(ctx, machine=True, acts=False)
    if json_out:
        print_json(plan_as_dict(loaded.plan))
        return
    views.print_plan(loaded.plan)


@app.command("up")
@friendly_errors
def up_cmd(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Bring the stack up (or converge it to the spec) and wait until it is healthy; take over
    what a dead supervisord left running."""
    loaded = load_stack(ctx, machine=True)
    stack = Stack(loaded.plan)
    err.print(f"hastack up: stack {loaded.plan.name!r} from {loaded.path}", markup=False)
    result = up(stack, loaded.path, ConsoleProgress())
    status = settled_status(stack)
    if json_out:
        print_json({"up": views.up_result_dict(result), "status": status.as_dict()})
    else:
        views.print_up_summary(loaded.plan, result, status, env_settings(stack))
    raise typer.Exit(status.exit_code)


@app.command()
@friendly_errors
def status(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """Every component and node. Exit 0 healthy, 1 degraded, 2 down."""
    result = stack_status(stack_of(ctx))
    if json_out:
        print_json(result.as_dict())
    else:
        views.print_status(result)
    raise typer.Exit(result.exit_code)


@app.command()
@friendly_errors
def audit(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """Check the running stack against the threat model (docs/security.md). Exit 0 only
    when every check passes; each failure says how to fix it."""
    report = audit_stack(stack_of(ctx), _config(ctx))
    if json_out:
        print_json(report.as_dict())
    else:
        for check in report.checks:
            mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
            out.print(f"{mark} {escape(check.name)}: {escape(check.detail)}")
            if check.fix:
                out.print(f"    fix: {check.fix}", markup=False)
        failed = sum(1 for c in report.checks if not c.ok)
        verdict = "every check passed" if report.passed else f"{failed} check(s) failed"
        out.print(f"audit of stack {report.stack!r}: {verdict}", markup=False)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
@friendly_errors
def env(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """Connection settings for applications (contains credentials): `eval $(hastack env)`."""
    settings = env_settings(stack_of(ctx))
    if json_out:
        print_json(settings)
        return
    for key, value in settings.items():
        out.print(f"export {key}='{value}'", markup=False)


@app.command()
@friendly_errors
def dashboards(
    ctx: typer.Context,
    out_dir: Path = typer.Option(..., "--out", help="Directory to write the JSON files into."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Write the stack's Grafana dashboards (one per layer) as JSON to import."""
    written = export_dashboards(stack_of(ctx), out_dir)
    if json_out:
        print_json({"dashboards": [str(p) for p in written]})
        return
    for path in written:
        out.print(f"wrote {path}", markup=False)
    out.print(
        "import each into Grafana (Dashboards -> New -> Import) and pick a Prometheus data "
        "source that reads this stack (docs/monitoring.md#dashboards)",
        markup=False,
    )


@app.command("deploy")
@friendly_errors
def deploy_cmd(
    ctx: typer.Context,
    target: str = typer.Option(
        "", "--target", help="swarm or compose (default: the spec's target, which must be it)."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Deploy the stack on a container engine: render, build the image, deploy, wait until
    every service is healthy, then make the database and the first backup, as `up` does."""
    stack = stack_of(ctx)
    target = target or stack.plan.spec.target
    err.print(f"hastack deploy: stack {stack.name!r} on {target}", markup=False)
    result = deploy(stack, target, ConsoleProgress())
    status = settled_status(stack)
    if json_out:
        print_json({"deploy": asdict(result), "status": status.as_dict()})
    else:
        views.print_deploy_summary(stack.plan, result, status, env_settings(stack))
    raise typer.Exit(status.exit_code)


@app.command("render")
@friendly_errors
def render_cmd(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="compose, swarm, kubernetes or systemd."),
    out_dir: Path = typer.Option(..., "--out", help="Directory to write (replaced whole)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Render the stack for another engine: the same configs the local stack runs, as that
    engine's files (secret files 0600; the secrets stay those in the state directory)."""
    loaded = load_stack(ctx)
    result = render(loaded.plan, target, out_dir)
    if json_out:
        print_json(asdict(result) | {"out": str(result.out)})
        return
    out.print(
        f"wrote {len(result.files)} files for {target} to {result.out} "
        f"({len(result.secret_files)} hold secrets: mode 0600, keep them out of version control)",
        markup=False,
    )
    for step in result.next_steps:
        out.print(f"next: {step}", markup=False)


@app.command()
@friendly_errors
def logs(
    ctx: typer.Context,
    target: str = typer.Argument(
        None,
        help="A node (pg1, ...), an app instance, or haproxy|pgbouncer|redis|supervisord|"
        "fencer|backup-repo|backup-scheduler|monitor. Leave out with --all.",
    ),
    component: str = typer.Argument(
        None,
        help="For a node: patroni (default), etcd, postgres or pgbackrest; for monitor: "
        "prometheus (default), alertmanager, alert-receiver or an exporter.",
    ),
    all_: bool = typer.Option(
        False, "--all", help="Every component's log in one time-ordered view."
    ),
    since: str = typer.Option(
        None, "--since", help="With --all: lines from this long ago (10m, 2h) or this time on."
    ),
    follow_: bool = typer.Option(False, "-f", "--follow", help="Keep printing new lines."),
    lines: int = typer.Option(
        None, "-n", "--lines", help="How many lines to show first (50; all with --since)."
    ),
    json_out: bool = typer.Option(False, "--json", help="With --all: one JSON object a line."),
) -> None:
    """Show a component's log, or every log merged in time order (--all)."""
    plan = load_stack(ctx).plan
    if all_:
        if target is not None:
            raise HastackError("--all shows every log: give no target", "hastack logs --all")
        _all_logs(plan, since, lines, follow_, json_out)
        return
    if target is None:
        raise HastackError("which log? give a target, or --all", "hastack logs pg1 | --all")
    if since is not None or json_out:
        raise HastackError("--since and --json go with --all", "hastack logs --all --since 10m")
    files = log_files(plan, target, component)
    if not files or not files[0].exists():
        raise HastackError(
            f"no log yet for {target} {component or ''}".strip(),
            "the stack has not run yet: `hastack up`",
        )
    path = files[0]
    err.print(f"==> {path} <==", markup=False)
    for line in tail(path, 50 if lines is None else lines):
        out.print(printable(line.rstrip("\n")), markup=False)
    if follow_:
        try:
            for line in follow(path):
                out.print(printable(line.rstrip("\n")), markup=False)
        except KeyboardInterrupt:
            pass


def _all_logs(
    plan: StackPlan, since: str | None, lines: int | None, follow_: bool, json_out: bool
) -> None:
    try:
        start = None if since is None else parse_since(since, datetime.now(UTC))
    except ValueError as exc:
        raise HastackError(str(exc), "hastack logs --all --since 10m") from None
    last = lines if lines is not None else (None if start is not None else 50)
    logs = every_log(plan)
    merged = merged_logs(logs, start, last)
    width = max((len(s) for s in logs), default=8)

    def show(when: str, source: str, text: str) -> None:
        if json_out:
            print_json_line({"time": when, "source": source, "line": text})
        else:
            out.print(f"{when} {source:<{width}} {printable(text)}", markup=False)

    for line in merged.lines:
        show(line.at.astimezone(UTC).isoformat(timespec="milliseconds"), line.source, line.text)
    if merged.unplaced:
        counts = ", ".join(f"{s} ({n})" for s, n in sorted(merged.unplaced.items()))
        err.print(f"lines with no time of their own, not shown: {counts}", markup=False)
    for source, why in sorted(merged.unreadable.items()):
        err.print(f"{source}: not read: {why}", markup=False)
    if follow_:
        try:
            for source, text in follow_many(logs):
                now = datetime.now(UTC).isoformat(timespec="milliseconds")
                show(now, source, text.rstrip("\n"))
        except KeyboardInterrupt:
            pass


@app.command("restart")
@friendly_errors
def restart_cmd(
    ctx: typer.Context,
    target: str = typer.Argument(
        ..., help="A node (pg1), a service (haproxy, pgbouncer, redis), pg1:etcd, etcd, patroni."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Restart a node or component in a safe order, then wait until the stack is healthy."""
    result = restart(stack_of(ctx), target, ConsoleProgress(quiet=json_out))
    if json_out:
        print_json(
            {
                "target": result.target,
                "restarted": result.restarted,
                "elapsed_s": result.elapsed_s,
                "health": result.assessment.health,
                "problems": list(result.assessment.problems),
            }
        )
    else:
        out.print(
            f"restarted {', '.join(result.restarted)} in {result.elapsed_s:.1f} s; "
            f"stack is {result.assessment.health}"
        )
        for problem in result.assessment.problems:
            out.print(f"  - {problem}", markup=False)
    raise typer.Exit(0 if result.assessment.healthy else 1)


@app.command("down")
@friendly_errors
def down_cmd(ctx: typer.Context) -> None:
    """Stop every process of the stack in a safe order. Data is kept; `up` resumes it."""
    stack = stack_of(ctx)
    result = down(stack, ConsoleProgress())
    if not result.was_running:
        out.print(f"stack {stack.name!r} is not running; nothing to stop")
        return
    views.print_stop(stack.name, "stopped", result.stop)


@app.command("destroy")
@friendly_errors
def destroy_cmd(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", help="Confirm: delete all data of this stack."),
) -> None:
    """Stop the stack and delete its state directory and system users (only what hastack made)."""
    stack = stack_of(ctx)
    if not yes:
        raise HastackError(
            f"destroy deletes every database and secret of stack {stack.name!r} "
            f"under {stack.plan.paths.state_dir}",
            "run `hastack destroy --yes` to confirm (or `hastack down` to stop and keep data)",
        )
    result = destroy(stack, ConsoleProgress())
    if not result.existed:
        out.print(f"stack {stack.name!r} does not exist; nothing to destroy")
        return
    if result.stop:
        views.print_stop(stack.name, "destroyed", result.stop)
    if result.removed_volumes:
        out.print(f"removed volumes: {', '.join(result.removed_volumes)}", markup=False)
    out.print(f"deleted {result.removed_dir}; removed users: {', '.join(result.removed_users)}")
    if stack.in_lab:
        out.print("its hosts' namespaces stay: `hastack lab down` removes them", markup=False)


@secrets_app.command("list")
def secrets_list() -> None:
    """Names of the secrets and what each is for (never their values)."""
    for name, purpose in SECRET_PURPOSES.items():
        out.print(f"{name:26} {purpose}", markup=False)


@secrets_app.command("show")
@friendly_errors
def secrets_show(
    ctx: typer.Context, name: str = typer.Argument(..., help="A secret name.")
) -> None:
    """Print one secret's value."""
    out.print(show_secret(stack_of(ctx), name), markup=False)


@secrets_app.command("rotate")
@friendly_errors
def secrets_rotate(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A secret name (hastack secrets list)."),
    grace_s: float = typer.Option(
        DEFAULT_GRACE_S,
        "--grace-s",
        min=0,
        help=(
            "app_secret_key: seconds that cookies and URLs signed with the old key stay "
            "valid (default: a session's life; 0 signs everyone out)."
        ),
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Give a secret a new random value across the running stack, then check that the old
    value is refused (app_secret_key: accepted until its grace period ends, then refused).
    Exit 0 only when it is."""
    loaded = load_stack(ctx, machine=True)
    stack = Stack(loaded.plan)
    result = rotate_secret(stack, name, loaded.path, ConsoleProgress(), grace_s=grace_s)
    if json_out:
        print_json(result.as_dict())
    else:
        verdict = {True: "refused", False: "STILL ACCEPTED", None: "not checked"}[
            result.old_refused
        ]
        if result.grace_until is not None and result.ok:
            verdict = "accepted until the grace period ends, refused after"
        out.print(
            f"{name} rotated in {result.elapsed_s:.1f} s; the old value: {verdict} "
            f"({result.evidence})",
            markup=False,
        )
        if result.reloaded:
            out.print("  reloaded: " + ", ".join(result.reloaded), markup=False)
    raise typer.Exit(0 if result.ok else 1)


bench_app = typer.Typer(help="Benchmarks that print numbers (run them on an idle machine).")
app.add_typer(bench_app, name="bench")


@bench_app.command("pg")
@friendly_errors
def bench_pg_cmd(
    ctx: typer.Context,
    scale: int = typer.Option(10, help="pgbench scale factor (10 = 1M accounts)."),
    clients: int = typer.Option(20, help="Concurrent pgbench clients."),
    duration: int = typer.Option(15, help="Seconds per run."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """pgbench select-only and TPC-B: direct to the primary, via HAProxy, via PgBouncer."""
    report = bench_pg(
        stack_of(ctx),
        scale=scale,
        clients=clients,
        duration_s=duration,
        progress=ConsoleProgress(quiet=json_out),
    )
    if json_out:
        print_json(asdict(report))
    else:
        views.print_pg_bench(report)


@bench_app.command("backup")
@friendly_errors
def bench_backup_cmd(
    ctx: typer.Context,
    scale: int = typer.Option(70, help="pgbench scale factor (70 = 7M accounts, ~1 GB)."),
    cluster: bool = typer.Option(
        False, "--cluster", help="Also restore the whole cluster from the repository (latest)."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Backups of a database of a given size: full and diff backup, point-in-time restore,
    verification (and with --cluster a whole-cluster restore), in one run (the pgbench tables
    are dropped after)."""
    from hastack.ops.bench_backup import bench_backup

    report = bench_backup(stack_of(ctx), scale, ConsoleProgress(quiet=json_out), cluster)
    if json_out:
        print_json(report.as_dict())
        return
    out.print(
        f"database {report.database_bytes / 1e6:.0f} MB (pgbench scale {report.scale}, "
        f"loaded in {report.init_s} s) on {report.leader}",
        markup=False,
    )
    for name, row in report.rows.items():
        rest = ", ".join(f"{k} {v}" for k, v in row.items() if k != "seconds")
        out.print(f"  {name}: {row['seconds']} s ({rest})", markup=False)


@bench_app.command("http")
@friendly_errors
def bench_http_cmd(
    ctx: typer.Context,
    duration: int = typer.Option(10, help="Seconds per run."),
    connections: int = typer.Option(32, help="Concurrent connections (wrk)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """HTTP requests/s and latency: bare vs the app tier, direct vs HAProxy (TLS), 1..N."""
    from hastack.ops.bench_http import bench_http

    report = bench_http(
        stack_of(ctx),
        duration_s=duration,
        connections=connections,
        progress=ConsoleProgress(quiet=json_out),
    )
    invalid = report.invalid()
    if json_out:
        print_json({**asdict(report), "summary": report.summary(), "invalid": invalid})
    else:
        views.print_http_bench(report)
    if invalid:
        raise HastackError(
            "the benchmark is not valid: some measurements failed",
            "rerun it; `hastack status` and `hastack logs app1` say what broke",
            invalid,
        )


@bench_app.command("idle")
@friendly_errors
def bench_idle_cmd(
    ctx: typer.Context,
    window: float = typer.Option(10.0, help="Seconds to measure CPU over."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Memory (PSS) and CPU of every process of the running stack."""
    report = idle_footprint(stack_of(ctx), window)
    if json_out:
        print_json(
            {
                **asdict(report),
                "total_pss_mib": report.total_pss_mib,
                "total_cpu_percent": report.total_cpu_percent,
            }
        )
    else:
        views.print_idle(report)
