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
- an undecided answer (pgBackRest's asynchronous push held the repository's archive lock
  at that moment, as it does for seconds at a time while PostgreSQL retries the segment;
  the repository out of reach) is asked again after `retry_s`, doubling up to `every_s`;
  a decided one (pushed, or marked done) at most once per `every_s` per segment.
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
    after_s: float = 5.0
    """Short: every second the leader's archive stays blocked widens what a cluster loss
    loses, and asking pgBackRest early costs at most an undecided answer (asked again)."""
    retry_s: float = 5.0
    every_s: float = 300.0


@dataclass(frozen=True)
class UnblockState:
    node: str | None = None
    """The leader the `ready_since` times were seen on (a new leader starts afresh)."""
    ready_since: Mapping[str, float] = field(default_factory=dict)
    next_check: Mapping[str, float] = field(default_factory=dict)
    failures: Mapping[str, int] = field(default_factory=dict)
    """Undecided answers in a row, per segment (the retry doubles with each)."""


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
    next_check = {s: at for s, at in previous.next_check.items() if s in since}
    failures = {s: n for s, n in previous.failures.items() if s in since}
    due = []
    for segment in ready:
        if t < next_check.get(segment, since[segment] + timings.after_s):
            continue
        due.append(segment)
        # Until `after_push` says otherwise (a push that raised says nothing).
        next_check[segment] = t + timings.every_s
    return due, replace(previous, ready_since=since, next_check=next_check, failures=failures)


def after_push(
    state: UnblockState,
    segment: str,
    t: float,
    decided: bool,
    timings: UnblockTimings = UnblockTimings(),
) -> UnblockState:
    """The state once pgBackRest answered for `segment` at `t`: `decided` when it pushed the
    segment or the segment was marked done; otherwise it is asked again soon."""
    failures = dict(state.failures)
    next_check = dict(state.next_check)
    if decided:
        failures.pop(segment, None)
        next_check[segment] = t + timings.every_s
    else:
        failures[segment] = failures.get(segment, 0) + 1
        wait = timings.retry_s * 2 ** (failures[segment] - 1)
        next_check[segment] = t + min(wait, timings.every_s)
    return replace(state, next_check=next_check, failures=failures)


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
    return (
        f"{stuck}: pgBackRest could not push it (exit {exit_code}: {detail}); left as is, "
        "asked again soon"
    )
