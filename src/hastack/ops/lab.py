"""`hastack lab`: the spec's hosts simulated on this machine (runtime/hostlab.py).

`lab up` makes one network namespace per host of a `target: systemd` spec, on a switch, and
`hastack up` then runs each program in its host's namespace. A host can be powered off and
on (what the lab's fence and unfence commands do), unplugged and plugged in (a partition),
and slowed (a narrow, lossy link): the faults of the drills host-loss, host-partition and
slow-link, and of an operator rehearsing them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from hastack.errors import HastackError
from hastack.runtime.hostlab import HostState, Lab, lab_subnet
from hastack.runtime.stack import Stack


@dataclass(frozen=True)
class LabUp:
    created: bool
    subnet: str
    seat: str
    """The operator's address on the lab's LAN (this machine's own namespace)."""
    hosts: tuple[HostState, ...]


def lab_of(stack: Stack) -> Lab:
    plan = stack.plan
    if plan.spec.target != "systemd":
        raise HastackError(
            f"stack {plan.name!r} has target {plan.spec.target}: a lab simulates the hosts of "
            "a `target: systemd` spec",
            "give the spec `target: systemd` and `hosts:` (docs/deploy-systemd.md#the-lab)",
        )
    lab_subnet(plan)  # refuses hosts that a lab cannot hold, with how to fix it
    return stack.lab()


def _existing(stack: Stack) -> Lab:
    lab = lab_of(stack)
    if not lab.lan.exists():
        raise HastackError(
            f"the lab of stack {stack.name!r} does not exist", "hastack lab up makes it"
        )
    return lab


def lab_up(stack: Stack) -> LabUp:
    lab = lab_of(stack)
    created = lab.create()
    return LabUp(created, str(lab.lan.network), lab.lan.seat_address, tuple(lab.states()))


def lab_down(stack: Stack) -> list[str]:
    return lab_of(stack).destroy()


def lab_status(stack: Stack) -> list[HostState]:
    return _existing(stack).states()


def power_off(stack: Stack, host: str) -> int:
    return _existing(stack).power_off(host)


def power_on(stack: Stack, host: str) -> list[str]:
    return _existing(stack).power_on(host)


def unplug(stack: Stack, host: str) -> None:
    _existing(stack).unplug(host)


def plug(stack: Stack, host: str) -> None:
    _existing(stack).plug(host)


def slow(stack: Stack, host: str, rate_kbit: int, loss_percent: float) -> None:
    if rate_kbit < 8 or not 0 <= loss_percent < 100:
        raise HastackError(
            f"a slow link of {rate_kbit} kbit/s with {loss_percent} % loss cannot be made",
            "--rate-kbit at least 8, --loss-percent from 0 to below 100",
        )
    _existing(stack).slow(host, rate_kbit, loss_percent)


def unslow(stack: Stack, host: str) -> None:
    _existing(stack).unslow(host)
