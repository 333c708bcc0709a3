"""The watcher's archive unblocking: a segment of an older timeline that stops WAL archiving.
Pure.

After failovers and `pg_rewind`, a node can hold a WAL segment of a timeline it no longer
follows without an archive status (pg_rewind copies segments; a rewound node keeps its own).
Once that node leads, PostgreSQL marks such a segment ready at a checkpoint and its archiver
offers it first. The repository already holds that segment name, archived by that timeline's
own primary, with other content (the node's copy is a diverged or partly recycled one), and
pgBackRest refuses it for good ([45] "already exists ... with a different checksum").
PostgreSQL archives in order: every newer segment waits behind it, the archive stops growing
and the cluster-loss RPO bound no longer holds. Nothing clears it by itself.

The repository's copy is that timeline's history; the node's copy serves nothing, since the
leader's own timeline left that one at an earlier switch point. So the watcher marks it done
(`.ready` -> `.done`, as the node's user), as an operator would:
- only on the leader, only a plain segment (not a history file, not a `.partial`) of a
  timeline lower than the leader's;
- only once it has stayed ready for `after_s` (right after a promotion the archiver may
  still be working through older segments);
- only when pgBackRest itself, asked to push it once more (synchronously, as the node's
  user), answers [45]: any other answer (pushed after all, repository out of reach) changes
  nothing;
- at most once per `every_s` per segment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

READY = re.compile(r"^([0-9A-F]{8})([0-9A-F]{16})\.ready$")
"""An archive status file of a plain WAL segment: timeline (8 hex digits), then the segment."""

DIFFERENT_CHECKSUM = 45
"""pgBackRest's exit code when the repository holds the segment with other content."""


@dataclass(frozen=True)
class UnblockTimings:
    after_s: float = 20.0
    every_s: float = 300.0


@dataclass(frozen=True)
class UnblockState:
    node: str | None = None
    """The leader the `ready_since` times were seen on (a new leader starts afresh)."""
    ready_since: Mapping[str, float] = field(default_factory=dict)
    last_check: Mapping[str, float] = field(default_factory=dict)


def segment_timeline(segment: str) -> int:
    return int(segment[:8], 16)


def old_timeline_ready(status_files: Iterable[str], timeline: int) -> list[str]:
    """The segments, among archive status file names, marked ready and of a timeline lower
    than `timeline`, oldest first."""
    found = []
    for name in status_files:
        match = READY.match(name)
        if match and int(match.group(1), 16) < timeline:
            found.append(match.group(1) + match.group(2))
    return sorted(found)


def plan_checks(
    state: UnblockState,
    t: float,
    leader: str | None,
    timeline: int | None,
    status_files: Iterable[str],
    timings: UnblockTimings = UnblockTimings(),
) -> tuple[list[str], UnblockState]:
    """The leader's segments to ask pgBackRest about now, and the state after. `timeline`:
    the leader's current one (None when unknown: nothing is checked)."""
    if leader is None or timeline is None:
        return [], UnblockState()
    previous = state if state.node == leader else UnblockState(node=leader)
    ready = old_timeline_ready(status_files, timeline)
    since = {s: previous.ready_since.get(s, t) for s in ready}
    last = {s: at for s, at in previous.last_check.items() if s in since}
    due = []
    for segment in ready:
        if t - since[segment] < timings.after_s:
            continue
        if segment in last and t - last[segment] < timings.every_s:
            continue
        due.append(segment)
        last[segment] = t
    return due, replace(previous, ready_since=since, last_check=last)


def sentence(
    node: str, segment: str, timeline: int, exit_code: int, output: str, marked: bool = True
) -> str:
    """What the watcher says after pgBackRest's answer for a stuck segment (and whether
    marking it done worked)."""
    old = segment_timeline(segment)
    stuck = (
        f"WAL archiving on {node} (timeline {timeline}) was stuck behind {segment}, a segment "
        f"of timeline {old}"
    )
    if exit_code == DIFFERENT_CHECKSUM and not marked:
        return (
            f"{stuck} that the repository already holds with other content, but marking it "
            "done failed (see the error); tried again later"
        )
    if exit_code == DIFFERENT_CHECKSUM:
        return (
            f"{stuck} that the repository already holds with other content (a diverged "
            "copy): marked done, archiving goes on"
        )
    if exit_code == 0:
        return f"{stuck}: pgBackRest accepted it this time (the repository holds it now)"
    detail = " ".join(output.split())[:200]
    return f"{stuck}: pgBackRest could not push it (exit {exit_code}: {detail}); left as is"
