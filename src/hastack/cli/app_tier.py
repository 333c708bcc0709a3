"""`hastack app ...` and `hastack scale`: the HTTP tier's operations."""

from __future__ import annotations

from dataclasses import asdict

import typer

from hastack.cli.app import app, friendly_errors, load_stack, stack_of
from hastack.cli.output import ConsoleProgress, out, print_json
from hastack.ops.app import restart_app, set_instances
from hastack.ops.up import up
from hastack.runtime.stack import Stack

app_app = typer.Typer(help="The app instances behind HAProxy's HTTP tier.")
app.add_typer(app_app, name="app")
token_app = typer.Typer(help="API tokens for the demo app.")
app_app.add_typer(token_app, name="token")


@token_app.command("create")
@friendly_errors
def token_create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="User name (created if missing)."),
    site: list[str] = typer.Option(..., "--site", help="Site the user may access (repeatable)."),
    days: int = typer.Option(90, "--days", help="Days until the token expires (1-3650)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Create a user and sites if missing and issue an API token (shown once)."""
    from hastack.ops.app_tokens import create_token

    issued = create_token(stack_of(ctx), user, site, days)
    if json_out:
        print_json(asdict(issued))
        return
    out.print(f"user {issued.user} (id {issued.user_id}), sites {issued.sites}", markup=False)
    out.print(f"token {issued.token_id}: {issued.token}", markup=False)
    out.print(f"expires {issued.expires_at}; revoke: hastack app token revoke {issued.token_id}")
    out.print("use it as `Authorization: Bearer <token>` with the X-Site-ID header", markup=False)


@token_app.command("list")
@friendly_errors
def token_list(
    ctx: typer.Context,
    user: str = typer.Option(None, "--user", help="Only this user's tokens."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Every API token (id, user, dates, state), never the token itself."""
    from hastack.ops.app_tokens import list_tokens

    tokens = list_tokens(stack_of(ctx), user)
    if json_out:
        print_json([asdict(t) for t in tokens])
        return
    for t in tokens:
        out.print(
            f"{t.token_id:>6}  {t.state:<8} {t.user:<20} created {t.created_at}  "
            f"expires {t.expires_at}" + (f"  revoked {t.revoked_at}" if t.revoked_at else ""),
            markup=False,
        )


@token_app.command("revoke")
@friendly_errors
def token_revoke(
    ctx: typer.Context,
    token_id: int = typer.Argument(None, help="The token's id (`hastack app token list`)."),
    user: str = typer.Option(None, "--user", help="Revoke every active token of this user."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Revoke a token (or all of a user's): refused by every instance within 30 s."""
    from hastack.ops.app_tokens import revoke_tokens

    count = revoke_tokens(stack_of(ctx), token_id, user)
    if json_out:
        print_json({"revoked": count})
        return
    out.print(f"revoked {count} token(s)", markup=False)


@app_app.command("restart")
@friendly_errors
def restart_cmd(
    ctx: typer.Context,
    rolling: bool = typer.Option(True, "--rolling/--all-at-once", help="One instance at a time."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Restart the app instances (rolling by default: zero failed requests)."""
    result = restart_app(stack_of(ctx), rolling=rolling, progress=ConsoleProgress(json_out))
    if json_out:
        print_json(asdict(result))
        return
    for r in result.instances:
        out.print(
            f"{r.name}: drained in {r.drained_s:.1f} s, restarted in {r.restarted_s:.1f} s, "
            f"back in rotation after {r.back_in_rotation_s:.1f} s",
            markup=False,
        )
    out.print(f"rolling restart done in {result.elapsed_s:.1f} s")


@app.command("scale")
@friendly_errors
def scale_cmd(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="app=N"),
) -> None:
    """Set the number of app instances in the spec and converge to it (`up`): new instances
    join HAProxy when ready; removed ones are drained first."""
    name, _, count = target.partition("=")
    if name != "app" or not count.isdigit():
        raise typer.BadParameter("write it as app=N, e.g. `hastack scale app=3`")
    loaded = load_stack(ctx)
    old = set_instances(loaded.path, int(count))
    reloaded = load_stack(ctx, machine=True)
    result = up(Stack(reloaded.plan), reloaded.path, ConsoleProgress())
    out.print(f"app instances: {old} -> {count} ({result.elapsed_s:.1f} s)")
