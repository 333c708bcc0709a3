"""`hastack lab`: the spec's hosts as network namespaces on this machine, and their faults."""

from __future__ import annotations

from dataclasses import asdict

import typer

from hastack.cli.app import app, friendly_errors, stack_of
from hastack.cli.output import out, print_json, table
from hastack.ops import lab

lab_app = typer.Typer(
    help=(
        "Simulate a `target: systemd` spec's hosts on this machine (a network namespace "
        "each, on one switch): `lab up`, then `hastack up`. Power a host off or on, unplug "
        "it, slow its link."
    )
)
app.add_typer(lab_app, name="lab")

HOST = typer.Argument(..., help="A host of the spec (hastack plan lists them).")
JSON = typer.Option(False, "--json", help="JSON output.")


@lab_app.command("up")
@friendly_errors
def up_cmd(ctx: typer.Context, json_out: bool = JSON) -> None:
    """Make the hosts' namespaces, the switch and the operator's seat (nothing when they
    exist)."""
    made = lab.lab_up(stack_of(ctx))
    if json_out:
        print_json(asdict(made))
        return
    what = "made" if made.created else "already there"
    out.print(
        f"lab {made.subnet}: {len(made.hosts)} hosts {what}; this machine is {made.seat} on "
        "it. Next: hastack up",
        markup=False,
    )


@lab_app.command("down")
@friendly_errors
def down_cmd(ctx: typer.Context) -> None:
    """Remove the lab (after `hastack destroy`: refused while a host runs a process)."""
    removed = lab.lab_down(stack_of(ctx))
    out.print(f"lab removed: {len(removed)} namespaces", markup=False)


@lab_app.command("status")
@friendly_errors
def status_cmd(ctx: typer.Context, json_out: bool = JSON) -> None:
    """Each host: power, cable, throttle, processes."""
    states = lab.lab_status(stack_of(ctx))
    if json_out:
        print_json([asdict(s) for s in states])
        return
    rows = [
        [
            s.name,
            s.address,
            "on" if s.on else "OFF",
            "plugged" if s.plugged else "UNPLUGGED",
            "slowed" if s.throttled else "",
            str(s.processes),
        ]
        for s in states
    ]
    out.print(table("lab hosts", ["host", "address", "power", "cable", "link", "processes"], rows))


@lab_app.command("power-off")
@friendly_errors
def power_off_cmd(ctx: typer.Context, host: str = HOST) -> None:
    """Power a host off: link down, its programs stopped, every process in it killed. Exit
    0 once nothing of it runs: the lab's fence command."""
    killed = lab.power_off(stack_of(ctx), host)
    out.print(f"{host} is off ({killed} processes killed)", markup=False)


@lab_app.command("power-on")
@friendly_errors
def power_on_cmd(ctx: typer.Context, host: str = HOST) -> None:
    """Power a host on: its link up (if plugged in), its programs started: the lab's unfence
    command."""
    started = lab.power_on(stack_of(ctx), host)
    out.print(f"{host} is on ({len(started)} programs started)", markup=False)


@lab_app.command("unplug")
@friendly_errors
def unplug_cmd(ctx: typer.Context, host: str = HOST) -> None:
    """Pull a host's cable: it runs on, cut off from every other host."""
    lab.unplug(stack_of(ctx), host)
    out.print(f"{host} unplugged", markup=False)


@lab_app.command("plug")
@friendly_errors
def plug_cmd(ctx: typer.Context, host: str = HOST) -> None:
    lab.plug(stack_of(ctx), host)
    out.print(f"{host} plugged in", markup=False)


@lab_app.command("slow")
@friendly_errors
def slow_cmd(
    ctx: typer.Context,
    host: str = HOST,
    rate_kbit: int = typer.Option(2000, "--rate-kbit", help="The link's rate, both ways."),
    loss_percent: float = typer.Option(2.0, "--loss-percent", help="Packets dropped each way."),
) -> None:
    """Slow a host's link: a rate cap both ways and random loss (this kernel has no netem:
    no added delay)."""
    lab.slow(stack_of(ctx), host, rate_kbit, loss_percent)
    out.print(f"{host}'s link: {rate_kbit} kbit/s, {loss_percent} % loss", markup=False)


@lab_app.command("unslow")
@friendly_errors
def unslow_cmd(ctx: typer.Context, host: str = HOST) -> None:
    lab.unslow(stack_of(ctx), host)
    out.print(f"{host}'s link at full speed", markup=False)
