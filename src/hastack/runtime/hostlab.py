"""The spec's hosts simulated on this machine: the lab.

A `target: systemd` spec names its hosts and their addresses; here each host becomes a
network namespace on a switch (tools/netns.py), and each program runs in the namespace of
the host its unit is placed on, exactly as the systemd render places it
(`render.systemd.program_unit`). One supervisord still runs them all: the watcher, the CLI
and the drills see one stack, while everything between hosts crosses a real link that a
drill can cut or throttle.

A host of the lab has a power switch and a cable, each kept as a marker file (root only,
under /run: a lab does not outlive the machine's boot, nor do its namespaces):
- **off** (`power_off`): its programs stopped in supervisord, every process in its
  namespace killed, its link down. This is what the lab's fence command does, as an
  IPMI "power off" would; `power_on` (the unfence command) starts its programs again;
- **unplugged** (`unplug`): its link down, its processes running (a cut cable, a
  partition). Powering a host on does not plug its cable back.
The link is up only when the host is on and plugged in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from hastack.errors import HastackError
from hastack.render.programs import Program, stack_programs
from hastack.render.systemd import program_unit
from hastack.runtime import holds
from hastack.runtime.supervisor import Supervisor
from hastack.spec.plan import StackPlan
from hastack.tools.netns import NETNS_DIR, HostLan, LanHost, Throttle

LAB_STATE_DIR = Path("/run/hastack-lab")
OFF_DEADLINE_S = 10.0
"""How long powering a host off may take to see every one of its processes gone."""


def lab_subnet(plan: StackPlan) -> str:
    """The /24 every host's address is in (the lab's LAN); refused otherwise."""
    if not plan.hosts:
        raise HastackError(
            f"stack {plan.name!r} has no hosts to simulate",
            "give the spec `target: systemd` and `hosts:` (docs/deploy.md#hosts-and-placement)",
        )
    nets = {ipaddress.ip_network(f"{h.address}/24", strict=False) for h in plan.hosts}
    if len(nets) != 1:
        raise HastackError(
            "the simulated hosts must share one /24: "
            + ", ".join(f"{h.name} {h.address}" for h in plan.hosts),
            "give every host an address in one /24 that is not this machine's network",
        )
    net = nets.pop()
    if net.is_loopback:
        raise HastackError(
            f"the hosts' addresses are on loopback ({net}): a host of the lab needs an address "
            "of its own namespace",
            "use a private /24 such as 10.213.1.0/24",
        )
    return str(net)


def host_lan(plan: StackPlan) -> HostLan:
    hosts = [LanHost(h.name, h.address) for h in plan.hosts]
    return HostLan(plan.name, lab_subnet(plan), hosts)


def program_host(plan: StackPlan, program: Program) -> str:
    host = plan.host_of(program_unit(plan, program))
    if host is None:
        raise HastackError(f"{program.name} is placed on no host", "hastack plan")
    return host.name


def program_namespaces(plan: StackPlan, lan: HostLan) -> dict[str, str]:
    """Program name -> the /run/netns path of the host its unit is placed on."""
    return {
        p.name: str(NETNS_DIR / lan.namespace(program_host(plan, p))) for p in stack_programs(plan)
    }


def lab_exists(plan: StackPlan) -> bool:
    """The stack's hosts exist here as namespaces (`hastack lab up` made them)."""
    if plan.spec.target != "systemd" or not plan.hosts:
        return False
    try:
        return host_lan(plan).exists()
    except HastackError:  # hosts no lab can hold (several /24s: real machines)
        return False


def lab_namespaces(plan: StackPlan) -> dict[str, str] | None:
    """Each program's namespace when the stack's hosts exist here as namespaces; None
    otherwise."""
    return program_namespaces(plan, host_lan(plan)) if lab_exists(plan) else None


def lab_seat(plan: StackPlan) -> str | None:
    """The operator's address on the lab's LAN (this machine's own namespace), which the
    nodes admit as a client; None without a lab."""
    return host_lan(plan).seat_address if lab_exists(plan) else None


def unit_netns(plan: StackPlan, unit: str) -> str | None:
    """The namespace a one-off process of `unit` (backup: the scratch instance) runs in:
    its host's, in the lab; None otherwise (this machine's own)."""
    if not lab_exists(plan):
        return None
    host = plan.host_of(unit)
    return str(NETNS_DIR / host_lan(plan).namespace(host.name)) if host else None


# --- a host's power and cable -------------------------------------------------------------


@dataclass(frozen=True)
class HostState:
    name: str
    address: str
    on: bool
    plugged: bool
    throttled: bool
    processes: int
    programs: tuple[str, ...]


class Lab:
    """The lab of one stack: its hosts' power, cables and links."""

    def __init__(self, plan: StackPlan, supervisor: Supervisor) -> None:
        self.plan = plan
        self.lan = host_lan(plan)
        self.supervisor = supervisor
        self.state_dir = LAB_STATE_DIR / plan.name

    def _host(self, name: str) -> str:
        names = [h.name for h in self.plan.hosts]
        if name not in names:
            raise HastackError(
                f"no host {name!r} in stack {self.plan.name!r}",
                "its hosts: " + ", ".join(names),
            )
        return name

    def _hold_name(self, host: str) -> str:
        return f"lab-{host}-off"

    def _marker(self, host: str, what: str) -> Path:
        return self.state_dir / f"{host}.{what}"

    def _set(self, host: str, what: str, present: bool) -> None:
        marker = self._marker(host, what)
        if present:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            marker.touch(mode=0o600)
        else:
            marker.unlink(missing_ok=True)

    def is_on(self, host: str) -> bool:
        return not self._marker(self._host(host), "off").exists()

    def is_plugged(self, host: str) -> bool:
        return not self._marker(self._host(host), "unplugged").exists()

    def _apply_link(self, host: str) -> None:
        if self.is_on(host) and self.is_plugged(host):
            self.lan.reconnect(host)
        else:
            self.lan.cut(host)

    def programs(self, host: str) -> list[Program]:
        """The host's programs, in start order."""
        self._host(host)
        return [p for p in stack_programs(self.plan) if program_host(self.plan, p) == host]

    def pids(self, host: str) -> list[int]:
        """Every process inside the host's network namespace (nsenter's and setpriv's
        children included: they exec the program itself)."""
        try:
            target = (NETNS_DIR / self.lan.namespace(self._host(host))).stat()
        except FileNotFoundError:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                seen = (entry / "ns" / "net").stat()
                if (seen.st_dev, seen.st_ino) == (target.st_dev, target.st_ino):
                    found.append(int(entry.name))
        return found

    def power_off(self, host: str) -> int:
        """The host goes dark: link down, programs stopped, every process in it killed
        (SIGSTOP first, so none reacts to another's death). The processes killed; a
        HastackError when some outlive the deadline."""
        self._set(self._host(host), "off", True)
        self._apply_link(host)
        # The watcher starts a stopped program again after a few seconds: not one of a
        # host that is off (a persistent hold, until the host is on again).
        names = [p.process_name for p in self.programs(host)]
        if self.plan.paths.fencing_dir.is_dir():
            holds.place_persistent(
                self.plan.paths.holds_dir, self._hold_name(host), f"host {host} is off", names
            )
        pids = self.pids(host)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        for name in names:
            with contextlib.suppress(Exception):
                self.supervisor.stop(name, wait=False)
        killed: set[int] = set()
        deadline = time.monotonic() + OFF_DEADLINE_S
        while pids := self.pids(host):
            killed.update(pids)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise HastackError(
                    f"{host} is not off: {len(pids)} processes outlived SIGKILL for "
                    f"{OFF_DEADLINE_S:g} s",
                    f"ps -o pid,user,stat,cmd -p {','.join(map(str, pids[:10]))}",
                )
            time.sleep(0.02)
        return len(killed)

    def power_on(self, host: str) -> list[str]:
        """The host boots: its link comes up (if its cable is plugged in) and its programs
        start, as a host's enabled units do at boot. The programs started."""
        self._set(self._host(host), "off", False)
        self._apply_link(host)
        holds.remove_persistent(self.plan.paths.holds_dir, self._hold_name(host))
        started = []
        for program in self.programs(host):
            info = self.supervisor.process(program.process_name)
            if not info.running:
                self.supervisor.start(program.process_name, wait=False)
                started.append(program.process_name)
        return started

    def unplug(self, host: str) -> None:
        self._set(self._host(host), "unplugged", True)
        self._apply_link(host)

    def plug(self, host: str) -> None:
        self._set(self._host(host), "unplugged", False)
        self._apply_link(host)

    def slow(self, host: str, rate_kbit: int, loss_percent: float) -> None:
        self.lan.throttle(self._host(host), Throttle(rate_kbit, loss_percent))
        self._set(host, "throttled", True)

    def unslow(self, host: str) -> None:
        self.lan.unthrottle(self._host(host))
        self._set(host, "throttled", False)

    def states(self) -> list[HostState]:
        return [
            HostState(
                h.name,
                h.address,
                self.is_on(h.name),
                self.is_plugged(h.name),
                self._marker(h.name, "throttled").exists(),
                len(self.pids(h.name)),
                tuple(p.process_name for p in self.programs(h.name)),
            )
            for h in self.plan.hosts
        ]

    def create(self) -> bool:
        """The namespaces, switch and seat (False: they existed already)."""
        if self.lan.exists():
            return False
        self.lan.create()
        for stale in self.state_dir.glob("*") if self.state_dir.exists() else ():
            stale.unlink()
        return True

    def destroy(self) -> list[str]:
        """Refused while a process runs in a host; the namespaces removed."""
        busy = {h.name: n for h in self.plan.hosts if (n := len(self.pids(h.name)))}
        if busy:
            raise HastackError(
                "the lab's hosts still run processes: "
                + ", ".join(f"{h} {n}" for h, n in busy.items()),
                f"hastack -c <spec> destroy --yes first (stack {self.plan.name})",
            )
        removed = self.lan.destroy()
        if self.state_dir.exists():
            for marker in self.state_dir.glob("*"):
                marker.unlink()
            self.state_dir.rmdir()
        return removed
