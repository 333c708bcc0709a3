"""iptables: one chain per stack, jumped to from OUTPUT, for network-cut drills (and one
per simulated host, for its lossy link: tools/netns.py).

On loopback every connection leaves from 127.0.0.1, so rules match the owner of the sending
socket (each node runs as its own user), not the source address.
"""

from __future__ import annotations

from collections.abc import Sequence

from hastack.tools.base import ToolError, run

IPTABLES = "/usr/sbin/iptables"


Jump = tuple[str, tuple[str, ...]]
"""A built-in chain that jumps to ours, and the matches the jump carries."""


class NetCut:
    """The network cuts of one stack, in its own chain. `prefix` runs iptables elsewhere (a
    host's network namespace: `nsenter --net=...`); `jumps` are the built-in chains that
    lead to it (by default every packet the machine sends)."""

    def __init__(
        self, chain: str, prefix: Sequence[str] = (), jumps: Sequence[Jump] = (("OUTPUT", ()),)
    ) -> None:
        self.chain = chain
        self.prefix = tuple(prefix)
        self.jumps = tuple(jumps)

    def _iptables(self, *args: str) -> tuple[int, str]:
        result = run([*self.prefix, IPTABLES, "-w", "5", *args], timeout_s=15)
        return result.returncode, result.stderr.strip()

    def exists(self) -> bool:
        return self._iptables("-n", "-L", self.chain)[0] == 0

    def ensure(self) -> None:
        """Create the chain (empty) and the jumps to it, once."""
        chain = self.chain
        if not self.exists():
            code, err = self._iptables("-N", chain)
            if code != 0:
                raise ToolError(f"iptables -N {chain} failed: {err}", hint="is iptables installed?")
        for hook, match in self.jumps:
            if self._iptables("-C", hook, *match, "-j", chain)[0] != 0:
                code, err = self._iptables("-I", hook, "1", *match, "-j", chain)
                if code != 0:
                    raise ToolError(f"iptables -I {hook} -j {chain} failed: {err}")

    def append(self, what: str, *rule: str) -> None:
        """One more rule at the end of the chain; `what` names it in the error."""
        code, err = self._iptables("-A", self.chain, *rule)
        if code != 0:
            raise ToolError(f"iptables rule {what} failed: {err}")

    def drop_from_user_to(self, user: str, address: str) -> None:
        """Drop every packet a process of `user` sends to `address`."""
        self.append(
            f"for {user} -> {address}",
            *("-m", "owner", "--uid-owner", user, "-d", f"{address}/32", "-j", "DROP"),
        )

    def remove(self) -> bool:
        """Remove the jumps, flush and delete the chain. True if it existed."""
        if not self.exists():
            return False
        for hook, match in self.jumps:
            while self._iptables("-D", hook, *match, "-j", self.chain)[0] == 0:
                pass
        self._iptables("-F", self.chain)
        code, err = self._iptables("-X", self.chain)
        if code != 0:
            raise ToolError(f"cannot delete iptables chain {self.chain}: {err}")
        return True
