"""The watcher's healing decisions: which stopped program to start again, and when. Pure.

A fault the stack survives must also heal by itself. supervisord restarts a program that
crashes, but not one that was stopped (a fence, a drill, a stray `supervisorctl stop`) or one
it gave up on (FATAL). The healer starts every such program again, like a host that reboots
after STONITH, once it is safe:
- nothing while the cluster is paused or hastack holds the watcher; a scoped hold keeps the
  programs it names down (a drill keeping two etcd members away on purpose);
- a program must have been down for `grace_s`, so that hastack's own stop-then-start is never
  raced;
- never start a program of which an unsupervised process still runs (left by a supervisord
  that died): `hastack up` takes that one over;
- etcd members and the services are always safe to start; so is Patroni on a node that was
  not fenced (Patroni finds its own place in the cluster, and adopts a PostgreSQL that still
  runs);
- Patroni on a fenced node starts only once another node holds the leader key (started
  while the key still names it, it would promote itself back), or when no leader has appeared
  for `no_leader_grace_s` (nobody else can take over: the old node is needed);
- a program that fails again within `stable_s` of being started (it exits by itself, or its
  node is fenced again) counts a failure, and each failure doubles the wait before the next
  start (`backoff_s`, capped at `max_backoff_s`): a crash loop backs off and is reported,
  never flaps the cluster. A program stopped on purpose (held down, stopped by an operator or
  a drill) is not failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

RUNNING_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF", "STOPPING"})
"""States in which supervisord is already taking care of the program."""

START_ORDER = {
    "etcd": 0,
    "patroni": 1,
    "haproxy": 2,
    "pgbouncer": 3,
    "redis": 4,
    "app": 5,
    "pgbackrest": 6,
    "backup": 7,
    "monitor": 8,
}


@dataclass(frozen=True)
class HealTimings:
    grace_s: float = 2.0
    stable_s: float = 60.0
    backoff_s: float = 5.0
    max_backoff_s: float = 300.0
    no_leader_grace_s: float = 30.0

    def backoff(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1)))


@dataclass(frozen=True)
class ProgramView:
    process_name: str
    """supervisor's `group:name`."""
    component: str
    node: str | None
    """The node a node program belongs to (None for services and app instances)."""
    state: str


@dataclass(frozen=True)
class HealInput:
    t: float
    """Monotonic seconds."""
    programs: tuple[ProgramView, ...]
    etcd_ok: bool
    leader: str | None
    """The leader key (read linearizably); meaningful only when etcd_ok."""
    paused: bool = False
    held_all: bool = False
    held: frozenset[str] = frozenset()
    """Programs under a scoped hold."""
    orphaned: frozenset[str] = frozenset()
    """Programs of which an unsupervised process still runs (left by a supervisord that
    died): starting them would run two (two Patroni on one data directory)."""


@dataclass(frozen=True)
class ProgramHistory:
    down_since: float | None = None
    started_at: float | None = None
    """When the healer last started it (None once it has stayed up for stable_s)."""
    failures: int = 0
    next_try: float = 0.0
    counted: bool = False
    """This down spell has been counted as a failure already."""


@dataclass(frozen=True)
class HealState:
    programs: Mapping[str, ProgramHistory] = field(default_factory=dict)
    fenced: Mapping[str, float] = field(default_factory=dict)
    """Nodes fenced and not yet back (node -> monotonic time of the fence)."""
    no_leader_since: float | None = None


@dataclass(frozen=True)
class HealAction:
    process_name: str
    node: str | None
    sentence: str


@dataclass(frozen=True)
class Waiting:
    """A program down and not started yet, with why (reported in the heartbeat)."""

    process_name: str
    sentence: str
    next_try_in_s: float | None = None
    failures: int = 0


def plan_heal(
    state: HealState, inp: HealInput, timings: HealTimings
) -> tuple[list[HealAction], list[Waiting], HealState]:
    """What to start now, what waits (and why), and the state after the starts."""
    no_leader_since = (
        None
        if inp.leader is not None or not inp.etcd_ok
        else (state.no_leader_since if state.no_leader_since is not None else inp.t)
    )
    histories = dict(state.programs)
    actions: list[HealAction] = []
    waiting: list[Waiting] = []
    for prog in sorted(inp.programs, key=lambda p: START_ORDER.get(p.component, 9)):
        if prog.component == "fencer":
            continue
        failed = _failed(prog, inp, state.fenced)
        hist = _observe(
            histories.get(prog.process_name, ProgramHistory()), prog, inp.t, timings, failed
        )
        histories[prog.process_name] = hist
        if prog.state in RUNNING_STATES:
            continue
        verdict = _verdict(prog, hist, inp, state.fenced, no_leader_since, timings)
        if isinstance(verdict, Waiting):
            waiting.append(verdict)
            continue
        actions.append(verdict)
        # A start that does not take (the program never runs) is tried again after
        # backoff_s, never on every poll.
        histories[prog.process_name] = replace(
            hist, started_at=inp.t, next_try=inp.t + timings.backoff_s
        )
    return (
        actions,
        waiting,
        replace(state, programs=histories, no_leader_since=no_leader_since),
    )


def _failed(prog: ProgramView, inp: HealInput, fenced: Mapping[str, float]) -> bool:
    """Whether this down spell is a failure of the program: it exited by itself (EXITED,
    FATAL), or its node was fenced. Stopped on purpose (a drill or an operator keeping it
    down, a hold) is not."""
    if inp.held_all or prog.process_name in inp.held:
        return False
    if prog.state in ("EXITED", "FATAL"):
        return True
    return prog.component == "patroni" and prog.node in fenced


def _observe(
    hist: ProgramHistory, prog: ProgramView, t: float, timings: HealTimings, failed: bool
) -> ProgramHistory:
    """Track when a program went down, count a failure when a program the healer started
    fell again by itself within stable_s, forget failures once it stayed up."""
    if prog.state in RUNNING_STATES:
        if hist.started_at is not None and t - hist.started_at >= timings.stable_s:
            return ProgramHistory()
        return replace(hist, down_since=None, counted=False)
    hist = hist if hist.down_since is not None else replace(hist, down_since=t)
    fell_again = hist.started_at is not None and t - hist.started_at < timings.stable_s
    if fell_again and failed and not hist.counted:
        failures = hist.failures + 1
        # The wait runs from the failure: a slow crash loop is throttled as much as a fast one.
        next_try = max(hist.next_try, t + timings.backoff(failures))
        hist = replace(hist, failures=failures, counted=True, next_try=next_try)
    return hist


def _verdict(
    prog: ProgramView,
    hist: ProgramHistory,
    inp: HealInput,
    fenced: Mapping[str, float],
    no_leader_since: float | None,
    timings: HealTimings,
) -> HealAction | Waiting:
    name, t = prog.process_name, inp.t
    down_for = t - (hist.down_since if hist.down_since is not None else t)
    if inp.paused or inp.held_all:
        why = "the cluster is paused" if inp.paused else "hastack holds the watcher"
        return Waiting(name, f"{name} is {prog.state.lower()}; not started: {why}")
    if name in inp.held:
        return Waiting(name, f"{name} is {prog.state.lower()} and held down on purpose")
    if name in inp.orphaned:
        return Waiting(
            name,
            f"{name} is {prog.state.lower()} but an unsupervised {prog.component} of it still "
            "runs: `hastack up` takes it over",
        )
    if down_for < timings.grace_s:
        return Waiting(name, f"{name} is {prog.state.lower()}; starting it if that lasts")
    if t < hist.next_try:
        sentence = (
            f"{name} failed again {hist.failures} time(s) soon after a start: backing off"
            if hist.failures
            else f"{name} was started and is not up yet; trying again if it stays down"
        )
        return Waiting(
            name,
            sentence,
            next_try_in_s=round(hist.next_try - t, 1),
            failures=hist.failures,
        )
    if prog.component == "patroni" and prog.node in fenced:
        return _fenced_patroni(prog, inp, fenced, no_leader_since, down_for, timings)
    retry = f" (attempt {hist.failures + 1})" if hist.failures else ""
    return HealAction(
        name,
        prog.node,
        f"{name} {prog.state.lower()} for {down_for:.0f} s: starting it again{retry}",
    )


def _fenced_patroni(
    prog: ProgramView,
    inp: HealInput,
    fenced: Mapping[str, float],
    no_leader_since: float | None,
    down_for: float,
    timings: HealTimings,
) -> HealAction | Waiting:
    node = prog.node or "?"
    name = prog.process_name
    if not inp.etcd_ok:
        return Waiting(name, f"{node} was fenced; waiting for etcd to name a leader")
    if inp.leader == node:
        return Waiting(
            name, f"{node} was fenced and the leader key still names it; waiting for its release"
        )
    if inp.leader is not None:
        return HealAction(
            name,
            node,
            f"{node} was fenced {inp.t - fenced[node]:.0f} s ago and {inp.leader} now holds the "
            f"leader key: starting {name}, it rejoins as a replica",
        )
    waited = inp.t - no_leader_since if no_leader_since is not None else 0.0
    if waited >= timings.no_leader_grace_s:
        return HealAction(
            name,
            node,
            f"{node} was fenced and no leader appeared for {waited:.0f} s: starting {name} so "
            "that the cluster can elect one",
        )
    return Waiting(name, f"{node} was fenced; waiting for a new leader ({waited:.0f} s so far)")


def host_return(
    state: HealState, inp: HealInput, node: str, host: str, timings: HealTimings
) -> HealAction | Waiting:
    """A node fenced by the operator's command (its host powered off or cut): whether its
    host may be brought back now, by the rule of a fenced node's Patroni (once another node
    holds the leader key, or when none appeared for no_leader_grace_s). Call after
    `plan_heal`, which keeps `no_leader_since`."""
    name = f"{node}'s host {host}"
    if inp.paused or inp.held_all:
        why = "the cluster is paused" if inp.paused else "hastack holds the watcher"
        return Waiting(name, f"{name} stays fenced for now: {why}")
    prog = ProgramView(name, "patroni", node, "STOPPED")
    return _fenced_patroni(prog, inp, state.fenced, state.no_leader_since, 0.0, timings)


def node_returned(state: HealState, node: str) -> HealState:
    """A fenced node runs again (as a replica): it is no longer waiting to return."""
    return replace(state, fenced={k: v for k, v in state.fenced.items() if k != node})


def node_fenced(state: HealState, node: str, t: float) -> HealState:
    return replace(state, fenced={**state.fenced, node: t})
