"""`hastack drill ...`: run the failure drills and read their reports."""

from __future__ import annotations

import signal
from types import FrameType

import typer

from hastack.cli.app import app, friendly_errors, stack_of
from hastack.cli.output import ConsoleProgress, out, print_json, table
from hastack.drills.campaign import cleanup, run_scenario
from hastack.drills.engine import DrillOptions
from hastack.drills.metrics import Figure
from hastack.drills.report import DrillReport, history, repeat_summary
from hastack.drills.scenarios import SCENARIOS, available

drill_app = typer.Typer(help="Failure drills: break the stack on purpose and measure the promises.")
app.add_typer(drill_app, name="drill")


def _sigterm_as_interrupt() -> None:
    """SIGTERM ends the fault like Ctrl-C does (the engine heals on any interruption)."""

    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _fmt(value: Figure) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else f"{value:.2f}"


def _print_report(report: DrillReport) -> None:
    verdict = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    out.print(f"{report.scenario}: {verdict} — {report.summary}")
    if report.error:
        out.print(f"  the run could not complete: {report.error}", markup=False)
    out.print(
        f"  write gap {_fmt(report.write_gap_s)} s, RTO {_fmt(report.rto_s)} s, healthy again "
        f"after {_fmt(report.healthy_again_s)} s, lost acknowledged writes "
        f"{report.rpo_lost_acked_writes}, split brain {'YES' if report.split_brain else 'no'}, "
        f"{report.acked_writes} acks, {report.errors} errors",
        markup=False,
    )
    out.print(
        f"  leader {report.old_primary} -> {report.new_primary}; watcher "
        f"{'on' if report.fencing else 'held'}",
        markup=False,
    )
    for reason in report.failure_reasons:
        out.print(f"  - {reason}", style="red", markup=False)
    for event in report.timeline:
        if event["kind"] in ("fault", "heal", "leader", "fencer", "recovered", "errors"):
            out.print(f"    {event['t']:7.2f} s  {event['kind']:9} {event['text']}", markup=False)
    if report.report_path:
        out.print(f"  report: {report.report_path}", markup=False)


def _print_summary(name: str, reports: list[DrillReport]) -> None:
    s = repeat_summary(name, reports)["summary"]
    gap, rto, healthy = s["write_gap_s"], s["rto_s"], s["healthy_again_s"]
    out.print(
        f"{name}: {s['passed']}/{s['runs']} passed; write gap median {_fmt(gap['median'])} / "
        f"p95 {_fmt(gap['p95'])} / max {_fmt(gap['max'])} s; RTO median {_fmt(rto['median'])}"
        f" s (did not recover: {rto['did_not_recover']}); healthy again median "
        f"{_fmt(healthy['median'])} / max {_fmt(healthy['max'])} s; lost acked writes "
        f"{s['rpo_lost_acked_writes']}; split-brain runs {s['split_brain_runs']}",
        markup=False,
    )


@drill_app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Every scenario and what it breaks."""
    if json_out:
        print_json(
            [
                {
                    "name": s.name,
                    "summary": s.summary,
                    "slow": s.slow,
                    "tier": s.tier,
                    "on_containers": available(s, "containers"),
                    "in_lab": available(s, "lab"),
                }
                for s in SCENARIOS.values()
            ]
        )
        return
    rows = [[s.name, s.tier, "slow" if s.slow else "", s.summary] for s in SCENARIOS.values()]
    out.print(table("drills", ["name", "tier", "", "what it does"], rows))


@drill_app.command("run")
@friendly_errors
def run_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A scenario from `hastack drill list`."),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Runs; reports median/p95/max."),
    no_fencing: bool = typer.Option(
        False, "--no-fencing", help="Hold the watcher until writes resume: the TTL-bound path."
    ),
    hold: float = typer.Option(
        None, "--hold", min=0.0, help="Seconds the fault lasts (default: the scenario's)."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Run one drill under load and check every promise: no lost acknowledged write, no split
    brain, the stack healthy again by itself. Exit 1 if any run failed."""
    _sigterm_as_interrupt()
    options = DrillOptions(fencing=not no_fencing, hold_s=hold)
    reports = run_scenario(stack_of(ctx), name, repeat, options, ConsoleProgress(json_out))
    if json_out:
        print_json(reports[0].to_dict() if repeat == 1 else repeat_summary(name, reports))
    else:
        for report in reports:
            _print_report(report)
        if repeat > 1:
            _print_summary(name, reports)
    raise typer.Exit(0 if all(r.passed for r in reports) else 1)


@drill_app.command("all")
@friendly_errors
def all_cmd(
    ctx: typer.Context,
    fast: bool = typer.Option(False, "--fast", help="Skip the slow scenarios."),
    repeat: int = typer.Option(1, "--repeat", min=1),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Every scenario in turn (about 15 minutes for one run of each), but region-loss: it
    runs against a standby cluster and leaves it promoted (run it by name). On Swarm or
    Compose, the drills that run there."""
    _sigterm_as_interrupt()
    stack = stack_of(ctx)
    results = {
        name: run_scenario(stack, name, repeat, progress=ConsoleProgress(json_out))
        for name, s in SCENARIOS.items()
        if not (fast and s.slow) and not s.region and available(s, stack.venue)
    }
    if json_out:
        print_json({name: repeat_summary(name, reports) for name, reports in results.items()})
    else:
        for name, reports in results.items():
            _print_summary(name, reports)
    passed = all(r.passed for reports in results.values() for r in reports)
    raise typer.Exit(0 if passed else 1)


@drill_app.command("history")
@friendly_errors
def history_cmd(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """Every stored drill report."""
    rows = history(stack_of(ctx).plan.paths.drills_dir)
    if json_out:
        print_json(rows)
        return
    header = ["started", "scenario", "passed", "gap s", "RTO s", "healthy s", "lost", "split"]
    out.print(
        table(
            "drill history",
            [*header, "errors", "leader"],
            [
                [
                    str(r["started_at"]),
                    str(r["scenario"]),
                    "yes" if r["passed"] else ("ERROR" if r["error"] else "NO"),
                    _fmt(r["write_gap_s"]),
                    _fmt(r["rto_s"]),
                    _fmt(r["healthy_again_s"]),
                    str(r["rpo_lost_acked_writes"]),
                    "YES" if r["split_brain"] else "no",
                    str(r["errors"]),
                    f"{r['old_primary']} -> {r['new_primary']}",
                ]
                for r in rows
            ],
        )
    )


@drill_app.command("cleanup")
@friendly_errors
def cleanup_cmd(ctx: typer.Context) -> None:
    """Undo what a killed drill left: network rules, frozen processes, watcher holds."""
    result = cleanup(stack_of(ctx))
    out.print(
        f"network rules removed: {'yes' if result.removed_network_rules else 'none left'}; "
        f"processes thawed: {result.thawed_processes}; watcher holds released: "
        f"{result.released_holds}"
    )
