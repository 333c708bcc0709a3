"""`hastack backup` and `hastack backups`: take a backup now, list what the repository holds."""

from __future__ import annotations

import typer
from rich.markup import escape

from hastack.cli.app import app, friendly_errors, stack_of
from hastack.cli.output import ConsoleProgress, out, print_json, table
from hastack.ops.backup import list_backups, take_backup
from hastack.spec.names import BACKUP_TYPES


def _mb(value: int) -> str:
    return f"{value / 1e6:.1f}"


@app.command("backup")
@friendly_errors
def backup_cmd(
    ctx: typer.Context,
    backup_type: str = typer.Option(
        "full", "--type", help="full, diff (since the last full) or incr (since the last backup)."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Take a backup now, from the current leader, into the stack's repository."""
    if backup_type not in BACKUP_TYPES:
        raise typer.BadParameter(
            f"{backup_type!r} is not a backup type; use one of {', '.join(BACKUP_TYPES)}",
            param_hint="--type",
        )
    run = take_backup(stack_of(ctx), backup_type, ConsoleProgress())
    if json_out:
        print_json(run.as_dict())
        return
    out.print(
        f"backup {run.label} ({run.type}): {_mb(run.size_bytes)} MB of database in "
        f"{run.duration_s:.1f} s ({run.mb_per_s} MB/s), {_mb(run.repo_bytes)} MB added to the "
        f"repository; WAL {run.wal_start} .. {run.wal_stop}",
        markup=False,
    )


@app.command("backups")
@friendly_errors
def backups_cmd(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """The backups in the repository, the WAL archive and the range a restore can reach."""
    view = list_backups(stack_of(ctx))
    data = view.as_dict()
    if json_out:
        print_json(data)
        return
    rows = [
        [
            b["label"],
            b["type"],
            b["stopped_at"] or "-",
            f"{b['duration_s']:.1f}",
            _mb(b["size_bytes"]),
            _mb(b["repo_bytes"]),
            b["verified_at"] or "no",
        ]
        for b in data["backups"]
    ]
    out.print(
        table(
            f"backups of stanza {view.info.name} ({view.info.status_message})",
            ["label", "type", "finished (UTC)", "took s", "db MB", "repo MB", "verified"],
            rows or [["(none yet)", "", "", "", "", "", ""]],
        )
    )
    wal = data["wal_archive"]
    out.print(f"WAL archive: {escape(str(wal['min']))} .. {escape(str(wal['max']))}")
    restorable = data["restorable"]
    if restorable["from"]:
        out.print(f"restorable from {restorable['from']} to {restorable['to']}", markup=False)
