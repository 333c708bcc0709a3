"""`hastack backup`, `backups`, `restore`, `restore-point`: take a backup, list what the
repository holds, restore a point in time into a scratch instance, mark a restore point."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.markup import escape

from hastack.cli.app import app, friendly_errors, stack_of
from hastack.cli.output import ConsoleProgress, out, print_json, table
from hastack.ops.backup import list_backups, take_backup
from hastack.ops.cluster_restore import restore_cluster
from hastack.ops.dump import list_dumps, restore_dump, take_dump
from hastack.ops.restore import (
    Target,
    cleanup_scratch,
    create_restore_point,
    parse_target,
    restore_scratch,
)
from hastack.ops.verify import verify_backup
from hastack.runtime.stack import Stack
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
    repo: int = typer.Option(
        1, "--repo", help="1: the local repository; 2: the S3 one (backup.s3)."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Take a backup now, from the current leader, into the stack's repository."""
    if backup_type not in BACKUP_TYPES:
        raise typer.BadParameter(
            f"{backup_type!r} is not a backup type; use one of {', '.join(BACKUP_TYPES)}",
            param_hint="--type",
        )
    run = take_backup(stack_of(ctx), backup_type, ConsoleProgress(), repo=repo)
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
    several = any(b["repo"] != 1 for b in data["backups"])
    rows = [
        [
            b["label"],
            b["type"],
            *([("local" if b["repo"] == 1 else f"{b['repo']} (S3)")] if several else []),
            b["stopped_at"] or "-",
            f"{b['duration_s']:.1f}",
            _mb(b["size_bytes"]),
            _mb(b["repo_bytes"]),
            b["verified_at"] or "no",
        ]
        for b in data["backups"]
    ]
    columns = ["label", "type", *(["repo"] if several else [])]
    columns += ["finished (UTC)", "took s", "db MB", "repo MB", "verified"]
    out.print(
        table(
            f"backups of stanza {view.info.name} ({view.info.status_message})",
            columns,
            rows or [["(none yet)", *[""] * (len(columns) - 1)]],
        )
    )
    wal = data["wal_archive"]
    out.print(f"WAL archive: {escape(str(wal['min']))} .. {escape(str(wal['max']))}")
    restorable = data["restorable"]
    if restorable["from"]:
        out.print(f"restorable from {restorable['from']} to {restorable['to']}", markup=False)


@app.command("restore")
@friendly_errors
def restore_cmd(
    ctx: typer.Context,
    to_time: str | None = typer.Option(
        None, "--to-time", help="A point in time, e.g. '2026-11-27 14:05:00+00' (UTC if no offset)."
    ),
    to_lsn: str | None = typer.Option(None, "--to-lsn", help="A WAL position, e.g. 0/5000060."),
    to_name: str | None = typer.Option(
        None, "--to-name", help="A restore point made with `hastack restore-point NAME`."
    ),
    latest: bool = typer.Option(False, "--latest", help="Everything archived."),
    target: str = typer.Option(
        "scratch",
        "--target",
        help="scratch: a separate instance on the repository host's address, to look at "
        "and copy from (the cluster is not touched). cluster: every node rebuilt from the "
        "repository (the current data set aside until the restored cluster is healthy).",
    ),
    yes: bool = typer.Option(False, "--yes", help="With --target cluster: do not ask first."),
    cleanup: bool = typer.Option(
        False, "--cleanup", help="Stop and remove the scratch instance instead."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Restore a backup to a point in time into a scratch instance (or remove it), or
    rebuild the whole cluster from the repository."""
    stack = stack_of(ctx)
    if cleanup:
        removed = cleanup_scratch(stack)
        if json_out:
            print_json({"removed": removed})
        else:
            out.print("scratch instance removed" if removed else "no scratch instance to remove")
        return
    if target not in ("scratch", "cluster"):
        raise typer.BadParameter(f"{target!r}: use scratch or cluster", param_hint="--target")
    point = parse_target(to_time, to_lsn, to_name, latest)
    if target == "cluster":
        _restore_cluster(stack, point, yes, json_out)
        return
    result = restore_scratch(stack, point, ConsoleProgress())
    if json_out:
        print_json(result.as_dict())
        return
    done = result.restore
    out.print(
        f"restored {done.target} in {done.total_s:.1f} s (restore {done.restore_s:.1f} s, "
        f"start {done.start_s:.1f} s, promote {done.promote_s:.1f} s)",
        markup=False,
    )
    out.print(f"  url:    {done.url}  (the superuser's password as of that backup)", markup=False)
    out.print(f"  socket: psql -h {done.socket_dir} -U postgres (as root)", markup=False)
    out.print("  remove it with: hastack restore --cleanup", markup=False)


def _restore_cluster(stack: Stack, point: Target, yes: bool, json_out: bool) -> None:
    question = (
        f"Replace the data of every node of {stack.name} with {point.describe()} from the "
        "backup repository? Writes after it are lost; the current data is set aside until "
        "the restored cluster is healthy, then removed."
    )
    if not yes and not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)
    result = restore_cluster(stack, point, ConsoleProgress())
    if json_out:
        print_json(result.as_dict())
        return
    out.print(
        f"cluster restored to {result.target}: {result.bootstrap_node} writable after "
        f"{result.leader_writable_s} s, every node streaming after {result.all_streaming_s} s; "
        f"full backup {result.backup} taken of the restored cluster",
        markup=False,
    )


@app.command("restore-point")
@friendly_errors
def restore_point_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Letters, digits and _ . : - (at most 63)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Mark a named point in the WAL (before a risky migration), for `restore --to-name`."""
    point = create_restore_point(stack_of(ctx), name)
    if json_out:
        print_json(asdict(point))
        return
    out.print(
        f"restore point {point.name!r} at {point.lsn} on {point.node} ({point.created_at}); "
        f"restore with: hastack restore --to-name {point.name}",
        markup=False,
    )


@app.command("verify-backup")
@friendly_errors
def verify_backup_cmd(
    ctx: typer.Context,
    label: str | None = typer.Argument(None, help="A backup set (default: the newest)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Prove a backup: check the repository's files, restore the set into the scratch
    instance, pg_amcheck --heapallindexed every database, count the rows; the result is
    recorded in the repository. Exit 0 only when all of it passed."""
    result = verify_backup(stack_of(ctx), label, ConsoleProgress())
    if json_out:
        print_json(result.as_dict())
    else:
        verdict = "verified" if result.ok else "FAILED"
        out.print(
            f"backup {result.label} ({result.type}): {verdict} in {result.total_s} s "
            f"(restore {result.restore_s} s, amcheck {result.amcheck_s} s, counting "
            f"{result.count_s} s); {result.tables} tables, {result.rows} rows",
            markup=False,
        )
        for problem in result.problems:
            out.print(f"  - {problem}", markup=False)
    raise typer.Exit(0 if result.ok else 1)


dump_app = typer.Typer(
    help="Logical dumps (pg_dump, encrypted): `hastack dump` takes one; list; restore.",
    invoke_without_command=True,
)
app.add_typer(dump_app, name="dump")


@dump_app.callback()
@friendly_errors
def dump_cmd(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Take a logical dump of the application database now (pg_dump custom format, encrypted
    with gpg AES-256), kept under <state>/dumps (backup.dumps_kept newest)."""
    if ctx.invoked_subcommand is not None:
        return
    run = take_dump(stack_of(ctx), ConsoleProgress(quiet=json_out))
    if json_out:
        print_json(run.as_dict())
        return
    out.print(
        f"dump {run.name} of {run.node}: {_mb(run.size_bytes)} MB in {run.seconds} s ({run.path})",
        markup=False,
    )
    if run.removed:
        out.print(f"  removed (retention): {', '.join(run.removed)}", markup=False)


@dump_app.command("list")
@friendly_errors
def dump_list_cmd(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """The dumps kept, oldest first."""
    found = list_dumps(stack_of(ctx))
    if json_out:
        print_json({"dumps": found})
        return
    rows = [[d["name"], d["created_at"], _mb(d["size_bytes"])] for d in found]
    out.print(table("logical dumps", ["name", "created (UTC)", "MB"], rows or [["(none)", "", ""]]))


@dump_app.command("restore")
@friendly_errors
def dump_restore_cmd(
    ctx: typer.Context,
    dump: str = typer.Argument(..., help="A dump's name (see `hastack dump list`) or path."),
    target: str = typer.Option(
        "scratch", "--target", help="scratch: a new instance on the repository host's address."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON output (progress on stderr)."),
) -> None:
    """Restore a dump into a new scratch instance (the cluster is not touched)."""
    if target != "scratch":
        # Copy what you need from the scratch instance: a dump never replaces the cluster.
        raise typer.BadParameter(
            f"{target!r}: a dump restores into scratch only", param_hint="--target"
        )
    done = restore_dump(stack_of(ctx), dump, ConsoleProgress(quiet=json_out))
    if json_out:
        print_json(done.as_dict())
        return
    out.print(
        f"restored {done.name} in {done.restore_s} s: {done.tables} tables, {done.rows} rows",
        markup=False,
    )
    out.print(f"  url:    {done.url}  (no password set: connect through the socket)", markup=False)
    out.print(f"  socket: psql -h {done.socket_dir} -U postgres (as root)", markup=False)
    out.print("  remove it with: hastack restore --cleanup", markup=False)
