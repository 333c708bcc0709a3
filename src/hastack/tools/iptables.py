"""iptables: one chain per stack, jumped to from OUTPUT, for network-cut drills.

On loopback every connection leaves from 127.0.0.1, so rules match the owner of the sending
socket (each node runs as its own user), not the source address.
"""

from __future__ import annotations

from hastack.tools.base import ToolError, run

IPTABLES = "/usr/sbin/iptables"


def _iptables(*args: str) -> tuple[int, str]:
    result = run([IPTABLES, "-w", "5", *args], timeout_s=15)
    return result.returncode, result.stderr.strip()


class NetCut:
    """The network cuts of one stack, in its own chain."""

    def __init__(self, chain: str) -> None:
        self.chain = chain

    def exists(self) -> bool:
        return _iptables("-n", "-L", self.chain)[0] == 0

    def ensure(self) -> None:
        """Create the chain (empty) and the jump from OUTPUT, once."""
        chain = self.chain
        if not self.exists():
            code, err = _iptables("-N", chain)
            if code != 0:
                raise ToolError(f"iptables -N {chain} failed: {err}", hint="is iptables installed?")
        if _iptables("-C", "OUTPUT", "-j", chain)[0] != 0:
            code, err = _iptables("-I", "OUTPUT", "1", "-j", chain)
            if code != 0:
                raise ToolError(f"iptables -I OUTPUT -j {chain} failed: {err}")

    def drop_from_user_to(self, user: str, address: str) -> None:
        """Drop every packet a process of `user` sends to `address`."""
        code, err = _iptables(
            "-A",
            self.chain,
            "-m",
            "owner",
            "--uid-owner",
            user,
            "-d",
            f"{address}/32",
            "-j",
            "DROP",
        )
        if code != 0:
            raise ToolError(f"iptables rule for {user} -> {address} failed: {err}")

    def remove(self) -> bool:
        """Remove the jump, flush and delete the chain. True if it existed."""
        if not self.exists():
            return False
        while _iptables("-D", "OUTPUT", "-j", self.chain)[0] == 0:
            pass
        _iptables("-F", self.chain)
        code, err = _iptables("-X", self.chain)
        if code != 0:
            raise ToolError(f"cannot delete iptables chain {self.chain}: {err}")
        return True
