"""The watcher's hands on a host of target systemd: the units of the programs on its own host,
through `systemctl`, in the words the watcher already speaks (supervisord's states).

On one machine the watcher reads program states from, and starts and stops programs
through, supervisord. A host of the systemd render has no supervisord: systemd restarts a
crashed unit by itself (`Restart=always`), and the watcher needs only what systemd does not
do: stop the Patroni (and etcd) of a node on its own host when it fences it, keep it
stopped while the node is fenced, and start it again once another node leads. Nodes on
other hosts are fenced with `fencing.command`; nothing of theirs is visible here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hastack.errors import HastackError
from hastack.tools.base import run as run_tool

SYSTEMCTL = "/usr/bin/systemctl"


class UnitsUnavailable(HastackError):
    """systemctl did not answer (the watcher then heals nothing this poll)."""


@dataclass(frozen=True)
class UnitInfo:
    process_name: str
    state: str
    """supervisord's word for the unit's state: RUNNING, STARTING, BACKOFF, STOPPING,
    STOPPED, FATAL or UNKNOWN."""


def supervisor_state(active: str, sub: str) -> str:
    """A unit's ActiveState and SubState as the state supervisord would report. Pure.
    `activating` in `auto-restart` is systemd waiting RestartSec= before a restart: what
    supervisord calls BACKOFF (the program is being taken care of)."""
    if active in ("active", "reloading"):
        return "RUNNING"
    if active == "activating":
        return "BACKOFF" if sub == "auto-restart" else "STARTING"
    if active == "deactivating":
        return "STOPPING"
    if active == "inactive":
        return "STOPPED"
    if active == "failed":
        return "FATAL"
    return "UNKNOWN"


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show --property=Id,LoadState,ActiveState,SubState UNIT...` (blocks of
    KEY=VALUE lines, one block per unit, separated by a blank line): unit -> state. A unit
    that is not installed is UNKNOWN. Pure."""
    states: dict[str, str] = {}
    for block in text.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        unit = fields.get("Id")
        if not unit:
            continue
        if fields.get("LoadState") == "not-found":
            states[unit] = "UNKNOWN"
            continue
        states[unit] = supervisor_state(fields.get("ActiveState", ""), fields.get("SubState", ""))
    return states


class SystemdUnits:
    """What the watcher asks of supervisord, asked of systemd for the units it was given
    (process name -> unit name)."""

    def __init__(self, units: dict[str, str], systemctl: str = SYSTEMCTL) -> None:
        self.units = units
        self.systemctl = systemctl

    def processes(self) -> list[UnitInfo]:
        if not self.units:
            return []
        result = run_tool(
            [
                self.systemctl,
                "show",
                "--property=Id,LoadState,ActiveState,SubState",
                *self.units.values(),
            ],
            timeout_s=10.0,
        )
        if not result.ok:
            raise UnitsUnavailable(f"systemctl show failed: {result.tail(3)[:300]}")
        states = parse_show(result.stdout)
        return [UnitInfo(name, states.get(unit, "UNKNOWN")) for name, unit in self.units.items()]

    def start(self, process_name: str, wait: bool = False, stop_timeout_s: float = 5) -> None:
        self._systemctl("start", process_name, wait)

    def stop(self, process_name: str, wait: bool = False) -> None:
        # `stop` (not a kill): systemd's Restart= never brings back a unit stopped on purpose.
        self._systemctl("stop", process_name, wait)

    def _systemctl(self, verb: str, process_name: str, wait: bool) -> None:
        unit = self.units.get(process_name)
        if unit is None:
            raise UnitsUnavailable(f"{process_name} has no unit on this host")
        argv = [self.systemctl, verb, *([] if wait else ["--no-block"]), unit]
        result = run_tool(argv, timeout_s=90.0 if wait else 10.0)
        if not result.ok:
            raise UnitsUnavailable(f"systemctl {verb} {unit} failed: {result.tail(3)[:300]}")
