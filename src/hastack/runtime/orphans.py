"""Processes of a stack that no running supervisord owns, and taking them over.

`kill -9` of supervisord leaves its children running, unsupervised: nothing restarts them when
they crash, and a second supervisord would start a second etcd, Patroni and HAProxy beside
them (two Patroni managing one data directory). `find_orphans` lists them; `adopt` hands each
one over to the running supervisord with the least disruption: etcd members one at a time
(quorum kept), Patroni SIGKILLed and restarted supervised (PostgreSQL keeps running and the new
Patroni adopts it, as in the kill-patroni drill), services and app instances stopped
gracefully and started again at once.

PostgreSQL is never an orphan: it is Patroni's detached child (re-parented to init) whether
supervisord lives or not, and a supervised Patroni adopts it. Nor is a job (an asynchronous
archive-push detaches from PostgreSQL; a backup, restore or pg_amcheck the CLI started runs
outside supervisord): each ends by itself. Only pgBackRest's TLS servers are programs.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Any

import psutil

from hastack.polling import Clock, until
from hastack.render.program import Program
from hastack.spec.plan import StackPlan

TERM_GRACE_S = 10.0

ADOPT_ORDER = (
    "watcher",
    "etcd",
    "patroni",
    "haproxy",
    "pgbouncer",
    "redis",
    "pgbackrest",
    "backup",
    "app",
    "monitor",
    "other",
)
"""Stop-and-restart order: the watcher first (it must not act on a cluster being handed
over), etcd before Patroni, HAProxy before the app instances it routes to."""


NEVER_ORPHANS = frozenset({"postgres", "job"})

JOB_PROGRAMS = ("pgbackrest", "pg_amcheck", "pg_ctl", "initdb")
"""Programs hastack runs as a stack user for one task (a backup, a restore, a verification):
they end by themselves, and killing one as an orphan would fail the task (pgBackRest's TLS
servers, `pgbackrest server`, are programs, not jobs)."""


@dataclass(frozen=True)
class StackProcess:
    pid: int
    user: str
    component: str
    """etcd, patroni, postgres, pgbackrest (a TLS server), job (JOB_PROGRAMS), haproxy,
    pgbouncer, redis, backup (the scheduler), app, watcher or other."""
    unit: str
    """The node (pg1), service (haproxy) or app instance (app1) it belongs to."""
    name: str
    """The executable's name, for reports."""

    def describe(self) -> str:
        return f"{self.unit} {self.component} (pid {self.pid}, {self.user})"


SHELLS = ("sh", "dash", "bash")


def _runs_pgbackrest(proc: psutil.Process, name: str) -> bool:
    """PostgreSQL runs archive_command and restore_command through `sh -c`; a standby
    cluster's restore_command bounds its fetch with `timeout`."""
    argv = _cmdline(proc)
    if name == "timeout":
        return any(a.endswith("pgbackrest") for a in argv[1:])
    return len(argv) >= 3 and argv[1] == "-c" and "pgbackrest" in argv[2]


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


@dataclass(frozen=True)
class Identity:
    """How to recognise a stack's processes: its users and what runs as each. Derived from
    the plan (`identity_of`); the watcher gets it from its JSON config (it never reads the
    spec)."""

    nodes: dict[str, str]
    """node user -> node name."""
    services: dict[str, str]
    """service user -> service (haproxy, pgbouncer, redis, app)."""
    apps: dict[str, str]
    """app instance address -> instance name."""
    watcher_config: str
    """The watcher's config path, which its command line names."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(**data)


def identity_of(plan: StackPlan) -> Identity:
    return Identity(
        nodes={n.user: n.name for n in plan.nodes},
        services={u: s for s, u in plan.service_users.items()},
        apps={i.address: i.name for i in plan.app_instances},
        watcher_config=str(plan.paths.fencer_config),
    )


def classify(identity: Identity, proc: psutil.Process, user: str, name: str) -> StackProcess | None:
    """What a process of the stack is, by its user and command line; None if not the
    stack's."""
    if name in JOB_PROGRAMS or (name in (*SHELLS, "timeout") and _runs_pgbackrest(proc, name)):
        unit = identity.nodes.get(user) or identity.services.get(user)
        if unit is None:
            return None
        server = name == "pgbackrest" and _cmdline(proc)[-1:] == ["server"]
        return StackProcess(proc.pid, user, "pgbackrest" if server else "job", unit, name)
    if user in identity.nodes:
        if name == "etcd":
            component = "etcd"
        elif name in ("postgres", "postmaster"):
            component = "postgres"
        elif any("patroni" in part for part in _cmdline(proc)):
            component = "patroni"
        else:
            component = "other"
        return StackProcess(proc.pid, user, component, identity.nodes[user], name)
    service = identity.services.get(user)
    if service is not None:
        if name in ("postgres", "postmaster"):
            # The scratch instance a restore started (the repository host's user).
            return StackProcess(proc.pid, user, "postgres", service, name)
        if service != "app":
            return StackProcess(proc.pid, user, service, service, name)
        argv = _cmdline(proc)
        unit = next((inst for address, inst in identity.apps.items() if address in argv), "app")
        return StackProcess(proc.pid, user, "app", unit, name)
    if user == "root" and identity.watcher_config in _cmdline(proc):
        return StackProcess(proc.pid, user, "watcher", "fencer", name)
    return None


def stack_processes(identity: Identity) -> list[StackProcess]:
    """Every process of the stack: its system users' processes and its root watcher."""
    found = []
    for proc in psutil.process_iter(["username", "name"]):
        user, name = proc.info["username"], proc.info["name"] or "?"
        if user is None:
            continue
        entry = classify(identity, proc, user, name)
        if entry is not None:
            found.append(entry)
    return found


def supervised_pids(supervisord_pid: int | None) -> set[int]:
    """supervisord and every process below it."""
    if supervisord_pid is None:
        return set()
    try:
        root = psutil.Process(supervisord_pid)
        return {root.pid} | {p.pid for p in root.children(recursive=True)}
    except psutil.Error:
        return set()


def find_orphans(identity: Identity, supervisord_pid: int | None) -> list[StackProcess]:
    """Stack processes no running supervisord owns (all of them when none runs), except
    PostgreSQL, which belongs to its node's Patroni, and pgBackRest's jobs."""
    return orphans_among(stack_processes(identity), supervised_pids(supervisord_pid))


def orphans_among(processes: list[StackProcess], owned: set[int]) -> list[StackProcess]:
    """The orphans among a stack's processes, given the pids supervisord owns.

    pgBackRest's TLS server serves each connection in a process it detaches (a double fork):
    every connection it is serving shows up outside supervisord's tree, under init, for as
    long as that archive-push or backup lasts. While the user's supervised server runs, such
    a process is that server's connection, a job that ends by itself; with no supervised
    server beside it, it is the orphaned server itself (it holds the port, so the supervised
    one cannot start)."""
    serving = {p.user for p in processes if p.component == "pgbackrest" and p.pid in owned}
    return [
        p
        for p in processes
        if p.pid not in owned
        and p.component not in NEVER_ORPHANS
        and not (p.component == "pgbackrest" and p.user in serving)
    ]


def signal_and_wait(pids: list[int], sig: signal.Signals, clock: Clock, grace_s: float) -> None:
    """Send `sig`, wait up to `grace_s` for the processes to exit, then SIGKILL the rest."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def gone() -> bool:
        return not any(psutil.pid_exists(pid) and _not_zombie(pid) for pid in pids)

    with contextlib.suppress(Exception):
        until(gone, what="processes exiting", timeout_s=grace_s, interval_s=0.05, clock=clock)
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    until(gone, what="processes exiting after SIGKILL", timeout_s=5, interval_s=0.05, clock=clock)


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def adoption_order(orphans: list[StackProcess], leader: str | None) -> list[list[StackProcess]]:
    """Batches to hand over, in order: one batch per unit, Patroni replicas before the
    leader's."""
    batches: list[list[StackProcess]] = []
    for component in ADOPT_ORDER:
        mine = [o for o in orphans if o.component == component]
        units = sorted({o.unit for o in mine}, key=lambda u: (u == leader, u))
        batches += [[o for o in mine if o.unit == unit] for unit in units]
    return batches


def program_for(programs: list[Program], orphan: StackProcess) -> Program | None:
    """The supervised program that replaces an orphan (the watcher's program is `fencer`)."""
    component = "fencer" if orphan.component == "watcher" else orphan.component
    for program in programs:
        if program.component == component and program.group == orphan.unit:
            return program
    return None


def takeover_candidates(orphans: list[StackProcess]) -> list[StackProcess]:
    """The orphans a recovery `up` can take over: those of a supervised program's kind. A
    process of a stack user that is none (a helper hastack runs as a node's user for a
    moment during a restore: `rm`, `mv`, `psql`) is nobody's program: `up` could not take
    it over, and running `up` then (seen in a test run, during a cluster-loss drill's
    restore) starts what the restore holds down on purpose."""
    return [o for o in orphans if o.component != "other"]
