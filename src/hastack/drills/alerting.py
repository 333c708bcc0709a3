"""What a drill promises about alerting: which alerts its fault must raise, and which drills
must page nobody. Pure: checked against the notifications Alertmanager sent to hastack's
receiver during the drill (`timeline.alerts_between`).

A drill listens that long after the fault even when the stack healed sooner: an alert fires
only once its condition held for the rule's `for:` (10 s for the P0/P1 rules a short fault
can raise), and reaches the receiver one scrape, one evaluation and Alertmanager's
`group_wait` later. Latency is reported (`t` of each alert); the deadline only separates "late"
from "never", it is not the target (docs/monitoring.md has the measured latencies).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PAGING = ("P0", "P1")
"""Severities Alertmanager routes to the `page` receiver (render/alerts.py RECEIVERS)."""

FIRE_DEADLINE_S = 45.0
"""An expected alert must reach the receiver within this many seconds of the fault."""

QUIET_S = 30.0
"""A drill that must page nobody listens this long after the fault: one scrape (5 s), one
evaluation (5 s), the shortest paging `for:` (10 s), the next evaluation and `group_wait`,
with room to spare. A fault longer than that is not a short fault any more."""


@dataclass(frozen=True)
class AlertPromise:
    fires: tuple[str, ...] = ()
    """Alerts that must start firing after the fault (on whichever node: the leader change
    names the new leader)."""
    pages_nobody: bool = False
    """No P0/P1 alert may start firing after the fault."""

    @property
    def any(self) -> bool:
        return bool(self.fires) or self.pages_nobody

    def listen_s(self) -> float:
        """How long after the fault the drill must keep listening, at most."""
        return max(FIRE_DEADLINE_S if self.fires else 0.0, QUIET_S if self.pages_nobody else 0.0)


def _fired(marks: Iterable[Mapping[str, Any]], t0: float) -> list[Mapping[str, Any]]:
    """Firing notifications of alerts that started firing after the fault (a repeat of one
    that fired before the drill is not this drill's)."""
    return [
        m
        for m in marks
        if m.get("state") == "firing" and float(m.get("starts_at", m["t"])) >= t0 - 1.0
    ]


def first_fired(
    marks: Iterable[Mapping[str, Any]], name: str, t0: float
) -> tuple[float, str] | None:
    """Seconds after the fault at which `name` reached the receiver, and the node it named."""
    found = sorted(
        (float(m["t"]) - t0, str(m.get("node") or ""))
        for m in _fired(marks, t0)
        if m["name"] == name
    )
    return found[0] if found else None


def heard_enough(
    promise: AlertPromise, marks: Sequence[Mapping[str, Any]], t0: float, t: float
) -> bool:
    """Whether the drill may stop listening at `t`: every expected alert arrived and, for a
    drill that must page nobody, the quiet window is over."""
    if promise.pages_nobody and t < t0 + QUIET_S:
        return False
    if any(first_fired(marks, name, t0) is None for name in promise.fires):
        return t >= t0 + promise.listen_s()
    return True


def alert_expectations(
    promise: AlertPromise, marks: Sequence[Mapping[str, Any]], t0: float
) -> list[dict[str, Any]]:
    """The report's expectation lines for `promise`."""
    found: list[dict[str, Any]] = []
    for name in promise.fires:
        fired = first_fired(marks, name, t0)
        promised = f"alert {name} fired within {FIRE_DEADLINE_S:.0f} s of the fault"
        if fired is None:
            what = f"{promised} (it never came)"
        elif fired[0] > FIRE_DEADLINE_S:
            what = f"{promised} (it came at {fired[0]:.1f} s)"
        else:
            where = f" ({fired[1]})" if fired[1] else ""
            what = f"alert {name}{where} fired {fired[0]:.1f} s after the fault"
        found.append({"what": what, "ok": fired is not None and fired[0] <= FIRE_DEADLINE_S})
    if promise.pages_nobody:
        pages = sorted(
            {
                f"{m['name']} ({m['severity']})"
                for m in _fired(marks, t0)
                if m.get("severity") in PAGING and float(m["t"]) - t0 <= QUIET_S
            }
        )
        found.append(
            {
                "what": f"no page within {QUIET_S:.0f} s of the fault (paged: "
                f"{', '.join(pages) or 'none'})",
                "ok": not pages,
            }
        )
    return found
