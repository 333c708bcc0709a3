"""Leadership and maintenance commands: switchover, failover, reinit, pause, resume,
promote-standby."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import typer

from hastack.cli.app import app, friendly_errors, stack_of
from hastack.cli.output import ConsoleProgress, fail, out, print_json
from hastack.ops.cluster import (
    LeaderChange,
    failover,
    failover_risk,
    reinit,
    set_paused,
    switchover,
)
from hastack.ops.promote import promote_standby


def _print_change(change: LeaderChange, json_out: bool) -> None:
    data = asdict(change)
    if change.assessment is not None:
        data["assessment"] = {
            "health": change.assessment.health,
            "problems": list(change.assessment.problems),
        }
    if json_out:
        print_json(data)
        return
    if change.scheduled_at:
        out.print(f"{change.action} of {change.old_leader} scheduled at {change.scheduled_at}")
        return
    out.print(
        f"{change.action}: {change.old_leader} -> {change.new_leader}; writable through HAProxy "
        f"after {change.writable_after_s:.2f} s"
        + (" (PgBouncer clients waited, no errors)" if change.pooler_paused else "")
    )
    for at, step in change.steps:
        out.print(f"  {at:6.2f} s  {step}", markup=False)
    if change.pooler_note:
        out.print(f"  note: {change.pooler_note}", markup=False)
    if change.assessment is not None:
        out.print(f"stack is {change.assessment.health}")
        for problem in change.assessment.problems:
            out.print(f"  - {problem}", markup=False)


@app.command("switchover")
@friendly_errors
def switchover_cmd(
    ctx: typer.Context,
    to: str = typer.Option(None, "--to", help="Candidate (default: the synchronous standby)."),
    at: datetime = typer.Option(None, "--at", help="Schedule it (ISO time, with timezone)."),
    no_pause: bool = typer.Option(False, "--no-pause", help="Do not pause PgBouncer around it."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Planned switchover: move the leader with no lost write (PgBouncer clients just wait)."""
    change = switchover(
        stack_of(ctx), to, at, pause_pooler=not no_pause, progress=ConsoleProgress(json_out)
    )
    _print_change(change, json_out)
    healthy = change.assessment is None or change.assessment.healthy
    raise typer.Exit(0 if healthy else 1)


@app.command("failover")
@friendly_errors
def failover_cmd(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="The node to promote."),
    force: bool = typer.Option(False, "--force", help="Do not ask for confirmation."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Manual failover: promote a node now (when the cluster cannot elect a leader itself)."""
    stack = stack_of(ctx)
    risk = failover_risk(stack, to)
    if risk and not force and not typer.confirm(f"{risk}. Promote {to} anyway?", default=False):
        fail("failover cancelled")
        raise typer.Exit(1)
    change = failover(stack, to, progress=ConsoleProgress(json_out))
    _print_change(change, json_out)
    raise typer.Exit(0 if change.assessment is None or change.assessment.healthy else 1)


@app.command("reinit")
@friendly_errors
def reinit_cmd(
    ctx: typer.Context,
    node: str = typer.Argument(..., help="A replica to wipe and clone again from the leader."),
) -> None:
    """Re-create a replica from the leader (after disk loss or divergence)."""
    result = reinit(stack_of(ctx), node, progress=ConsoleProgress())
    health = result.assessment.health
    out.print(f"{result.node} reinitialised in {result.elapsed_s:.1f} s; stack is {health}")
    raise typer.Exit(0 if result.assessment.healthy else 1)


@app.command("promote-standby")
@friendly_errors
def promote_standby_cmd(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", help="Do not ask first."),
    force: bool = typer.Option(
        False, "--force", help="Promote even though the old primary still accepts writes."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Make this standby cluster the primary cluster (its primary's region is lost)."""
    stack = stack_of(ctx)
    question = (
        f"Promote standby cluster {stack.name}? It stops following its primary for good; "
        "writes go here from now on."
    )
    if not yes and not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)
    result = promote_standby(stack, force=force, progress=ConsoleProgress())
    if json_out:
        print_json(result.as_dict())
        return
    out.print(
        f"{stack.name} is the primary cluster: {result.leader} took writes "
        f"{result.writable_s} s after the request; app and backups up after "
        f"{result.elapsed_s} s",
        markup=False,
    )


@app.command("pause")
@friendly_errors
def pause_cmd(ctx: typer.Context) -> None:
    """Maintenance mode: Patroni stops failing over and restarting PostgreSQL."""
    result = set_paused(stack_of(ctx), True, progress=ConsoleProgress())
    out.print(f"cluster paused (members: {result.members}); `hastack resume` to end it")


@app.command("resume")
@friendly_errors
def resume_cmd(ctx: typer.Context) -> None:
    """End maintenance mode."""
    result = set_paused(stack_of(ctx), False, progress=ConsoleProgress())
    out.print(f"cluster resumed (members: {result.members})")
