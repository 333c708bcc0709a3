"""The argv that runs a program inside a network namespace (a simulated host of the lab) as
a given user. One definition for the two places that build it: supervisord's program lines
(render) and the commands hastack runs itself (tools). Pure."""

from __future__ import annotations

from collections.abc import Sequence

NSENTER = "/usr/bin/nsenter"
SETPRIV = "/usr/bin/setpriv"


def in_network_namespace(netns: str, user: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` run inside the namespace at `netns` (its /run/netns path) as `user`: entering
    one needs root, so nsenter runs as root and setpriv then drops to the user and its
    group, with no supplementary group (as supervisord's `user=` and tools' `as_user` do)."""
    prefix = [NSENTER, f"--net={netns}", "--"]
    if user is not None and user != "root":
        prefix += [SETPRIV, f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]
    return [*prefix, *argv]
