"""Hosts on one machine: a network namespace per host, wired to a switch, for drills on what
crosses a network (a whole host cut off, slowed, or gone).

Layout (iproute2): the switch is a bridge in a namespace of its own, so the machine's own
namespace gets nothing but one veth, the operator's seat (the CLI, the drill's clients, the
tests reach every host through it). Each host namespace has loopback and one veth into the
switch, carrying the host's address. Cutting a host shuts its switch port (the link goes
down on both ends, as a pulled cable); slowing it caps its port's rate (tbf, both ways) and
drops a share of what crosses its cable at random (iptables `statistic` in the host's
namespace; its own loopback is spared).

This kernel has no netem (`tc qdisc ... netem` is an unknown kind here), so a slow link is a
narrow and lossy one, not a long one: its latency comes from queueing under load.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hastack.namespaces import NSENTER
from hastack.tools.base import ToolError, ToolResult, run
from hastack.tools.iptables import Jump, NetCut

IP = "/usr/sbin/ip"
TC = "/usr/sbin/tc"
NETNS_DIR = Path("/run/netns")
BRIDGE = "switch0"
LOSS_CHAIN = "HASTACK-LOSS"


@dataclass(frozen=True)
class LanHost:
    name: str
    address: str


@dataclass(frozen=True)
class Throttle:
    """A slow link: its rate both ways, and the share of packets dropped each way."""

    rate_kbit: int
    loss_percent: float = 0.0


def _ip(*args: str, check: bool = True) -> ToolResult:
    result = run([IP, *args], timeout_s=15)
    if check and not result.ok:
        raise ToolError(f"ip {' '.join(args)} failed", result)
    return result


class HostLan:
    """The namespaces of one lab, named after `lab` (a stack's name): `hs-<lab>-<host>` and
    `hs-<lab>-switch`. Interface names are derived from a short digest of `lab` (the kernel
    allows 15 characters), so two labs never share one."""

    def __init__(self, lab: str, subnet: str, hosts: Sequence[LanHost]) -> None:
        self.lab = lab
        self.network = ipaddress.ip_network(subnet)
        self.hosts = tuple(hosts)
        self.tag = hashlib.sha256(lab.encode()).hexdigest()[:5]

    # --- names ----------------------------------------------------------------------------

    def namespace(self, host: str) -> str:
        return f"hs-{self.lab}-{host}"

    @property
    def switch(self) -> str:
        return f"hs-{self.lab}-switch"

    def _cable(self, host: str) -> tuple[str, str]:
        """(the host's end, the switch's end) of the host's cable."""
        for index, each in enumerate(self.hosts):
            if each.name == host:
                return f"h{self.tag}{index}", f"s{self.tag}{index}"
        raise ToolError(f"no host {host} in the lab {self.lab}")

    @property
    def _seat(self) -> tuple[str, str]:
        return f"h{self.tag}op", f"s{self.tag}op"

    @property
    def seat_address(self) -> str:
        """The operator's address on the LAN: the subnet's last host address."""
        return str(self.network.broadcast_address - 1)

    # --- life -----------------------------------------------------------------------------

    def exists(self) -> bool:
        return (NETNS_DIR / self.switch).exists()

    def create(self) -> None:
        """The switch, one namespace per host with its address, the operator's seat. Refuses
        an address outside the subnet (or the seat's) and a lab that exists already; a
        failure half-way removes what was made."""
        if self.exists():
            raise ToolError(
                f"the host lab {self.lab} exists already",
                hint="destroy it first (HostLan.destroy, or ip netns del each hs-<lab>-*)",
            )
        for host in self.hosts:
            if ipaddress.ip_address(host.address) not in self.network:
                raise ToolError(f"{host.name}'s address {host.address} is not in {self.network}")
            if host.address == self.seat_address:
                raise ToolError(f"{host.name}'s address {host.address} is the operator's seat")
        prefix = self.network.prefixlen
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", self.switch, "link", "set", BRIDGE, "up")
            for host in self.hosts:
                ns = self.namespace(host.name)
                mine, port = self._cable(host.name)
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip(
                    "link",
                    "add",
                    mine,
                    "netns",
                    ns,
                    "type",
                    "veth",
                    "peer",
                    port,
                    "netns",
                    self.switch,
                )
                _ip("-n", self.switch, "link", "set", port, "master", BRIDGE, "up")
                _ip("-n", ns, "addr", "add", f"{host.address}/{prefix}", "dev", mine)
                _ip("-n", ns, "link", "set", mine, "up")
            mine, port = self._seat
            _ip("link", "add", mine, "type", "veth", "peer", port, "netns", self.switch)
            _ip("-n", self.switch, "link", "set", port, "master", BRIDGE, "up")
            _ip("addr", "add", f"{self.seat_address}/{prefix}", "dev", mine)
            _ip("link", "set", mine, "up")
        except ToolError:
            self.destroy()
            raise

    def destroy(self) -> list[str]:
        """Every namespace of the lab and the operator's seat (deleting a namespace deletes
        the veth ends in it, and so their peers). The namespaces removed."""
        removed = []
        for ns in [*(self.namespace(h.name) for h in self.hosts), self.switch]:
            if (NETNS_DIR / ns).exists():
                _ip("netns", "del", ns)
                removed.append(ns)
        seat = self._seat[0]
        if _ip("link", "show", seat, check=False).ok:
            _ip("link", "del", seat)
        return removed

    # --- faults ---------------------------------------------------------------------------

    def cut(self, host: str) -> None:
        """Shut the host's switch port: nothing reaches it, nothing leaves it."""
        _ip("-n", self.switch, "link", "set", self._cable(host)[1], "down")

    def reconnect(self, host: str) -> None:
        _ip("-n", self.switch, "link", "set", self._cable(host)[1], "up")

    def throttle(self, host: str, how: Throttle) -> None:
        """Cap the host's link both ways (tbf on each end of its cable) and drop
        `loss_percent` of its packets each way at random. Replaces an earlier throttle."""
        self.unthrottle(host)
        mine, port = self._cable(host)
        ns = self.namespace(host)
        for where, dev in ((ns, mine), (self.switch, port)):
            tbf = ["rate", f"{how.rate_kbit}kbit", "burst", "32kbit", "latency", "400ms"]
            result = run(
                [TC, "-n", where, "qdisc", "replace", "dev", dev, "root", "tbf", *tbf],
                timeout_s=15,
            )
            if not result.ok:
                raise ToolError(f"cannot throttle {host}'s link", result)
        if how.loss_percent > 0:
            lossy = self._loss(host)
            lossy.ensure()
            probability = f"{how.loss_percent / 100:.4f}"
            lossy.append(
                f"dropping {how.loss_percent} % of {host}'s packets",
                *("-m", "statistic", "--mode", "random", "--probability", probability),
                *("-j", "DROP"),
            )

    def unthrottle(self, host: str) -> None:
        """The host's link at full speed, nothing dropped (nothing to do when it is)."""
        mine, port = self._cable(host)
        for where, dev in ((self.namespace(host), mine), (self.switch, port)):
            run([TC, "-n", where, "qdisc", "del", "dev", dev, "root"], timeout_s=15)
        self._loss(host).remove()

    def _loss(self, host: str) -> NetCut:
        """The chain of the host's random losses, in its namespace: everything that comes in
        or goes out of its cable passes it, nothing on its own loopback does."""
        loopback_spared: tuple[Jump, ...] = (
            ("INPUT", ("!", "-i", "lo")),
            ("OUTPUT", ("!", "-o", "lo")),
        )
        return NetCut(LOSS_CHAIN, prefix=self.exec_argv(host), jumps=loopback_spared)

    # --- running in a host ----------------------------------------------------------------

    def exec_argv(self, host: str) -> list[str]:
        """The prefix that runs a command inside the host's network namespace (nothing else
        of it changes: the same files, the same users)."""
        self._cable(host)  # a host of this lab
        return [NSENTER, f"--net={NETNS_DIR / self.namespace(host)}", "--"]
