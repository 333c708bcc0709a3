"""Faults of whole hosts, in the lab (the spec's hosts as network namespaces here,
runtime/hostlab.py): a host lost (its power off), cut off (its cable pulled), or on a slow
link. Each drill faults the host of the primary.

As everywhere, a heal only ends the fault: the power returns, the cable is plugged back, the
link is fast again. Fencing the lost primary's host and bringing it back are the watcher's
job (fencing.command, fencing.unfence_command), and the drill measures them.
"""

from __future__ import annotations

from hastack.drills.faults import DrillContext
from hastack.errors import HastackError
from hastack.spec.placement import SERVICES

SLOW_RATE_KBIT = 2000
SLOW_LOSS_PERCENT = 2.0
SLOW_HOLD_S = 20.0


def primary_host(ctx: DrillContext) -> str:
    """The host of the primary; refused when that host also runs the services (HAProxy,
    PgBouncer): losing it loses the stack's only entry, which no failover brings back."""
    plan = ctx.stack.plan
    host = plan.host_of(ctx.primary)
    if host is None:
        raise HastackError(f"{ctx.primary} is placed on no host", "hastack plan")
    if SERVICES in host.units:
        raise HastackError(
            f"the primary {ctx.primary} shares host {host.name} with the services (HAProxy, "
            "PgBouncer): losing that host loses the stack's only entry, which no failover "
            "brings back",
            "give the services a host of their own (`runs: [services]`), or switch over to "
            "a node on another host first (hastack switchover)",
        )
    return host.name


def lose_host(ctx: DrillContext) -> None:
    host = primary_host(ctx)
    killed = ctx.stack.lab().power_off(host)
    ctx.history.mark(
        "fault",
        f"host {host} of {ctx.primary} lost: power off ({killed} processes killed, link down)",
        node=ctx.primary,
    )


def power_returns(ctx: DrillContext) -> None:
    """The lost host's power comes back (nothing, when the watcher already brought it back
    with fencing.unfence_command)."""
    lab = ctx.stack.lab()
    host = primary_host(ctx)
    if lab.is_on(host):
        ctx.history.mark("heal", f"host {host} already back (the watcher powered it on)")
        return
    started = lab.power_on(host)
    ctx.history.mark("heal", f"host {host}'s power back: {len(started)} programs start")


def unplug_host(ctx: DrillContext) -> None:
    host = primary_host(ctx)
    ctx.stack.lab().unplug(host)
    ctx.history.mark(
        "fault", f"host {host} of {ctx.primary} cut off: its cable pulled", node=ctx.primary
    )


def plug_host(ctx: DrillContext) -> None:
    host = primary_host(ctx)
    ctx.stack.lab().plug(host)
    ctx.history.mark("heal", f"host {host}'s cable plugged back in", node=ctx.primary)


def slow_host(ctx: DrillContext) -> None:
    host = primary_host(ctx)
    ctx.stack.lab().slow(host, SLOW_RATE_KBIT, SLOW_LOSS_PERCENT)
    ctx.history.mark(
        "fault",
        f"host {host} of {ctx.primary} on a slow link: {SLOW_RATE_KBIT} kbit/s both ways, "
        f"{SLOW_LOSS_PERCENT:g} % of packets lost each way",
        node=ctx.primary,
    )


def fast_again(ctx: DrillContext) -> None:
    host = primary_host(ctx)
    ctx.stack.lab().unslow(host)
    ctx.history.mark("heal", f"host {host}'s link at full speed again")
