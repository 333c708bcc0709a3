"""Taking over the programs a dead supervisord left running (part of `up`).

Each orphan is handed to the running supervisord with the least disruption, in an order that
keeps the cluster up: the orphaned watcher stops first; etcd members one at a time, each
healthy again before the next (quorum never lost); each Patroni is SIGKILLed and started again
supervised, replicas before the leader: PostgreSQL keeps running and the new Patroni adopts it
(no failover, as in the kill-patroni drill); HAProxy soft-stops (its listeners close, its
connections finish) while the supervised one starts; PgBouncer and Redis restart; app
instances one at a time, drained first.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

from hastack.errors import HastackError, Unavailable
from hastack.runtime.apptier import drain_quietly, save_server_state, set_app_state, wait_ready
from hastack.runtime.lifecycle import ensure_started
from hastack.runtime.orphans import (
    TERM_GRACE_S,
    StackProcess,
    adoption_order,
    find_orphans,
    program_for,
    signal_and_wait,
)
from hastack.runtime.progress import Progress
from hastack.runtime.stack import Stack

STOP_SIGNAL = {
    "watcher": signal.SIGTERM,
    "etcd": signal.SIGTERM,
    # PostgreSQL survives its Patroni; the supervised Patroni adopts it.
    "patroni": signal.SIGKILL,
    "pgbouncer": signal.SIGINT,
}


def adopt_orphans(stack: Stack, progress: Progress) -> list[str]:
    """Hand every orphan over to supervisord (which must be running); return one line per
    unit taken over."""
    sup = stack.supervisor
    orphans = find_orphans(stack.identity, sup.pid())
    if not orphans:
        return []
    progress.step(
        f"taking over {len(orphans)} processes no running supervisord owns: "
        + ", ".join(sorted({f"{o.unit} {o.component}" for o in orphans}))
    )
    taken: list[str] = []
    programs = stack.programs()
    for batch in adoption_order(orphans, stack.leader()):
        first = batch[0]
        program = program_for(programs, first)
        if first.component in ("etcd", "patroni"):
            _ensure_quorum(stack, progress)
        progress.step(f"taking over {first.unit} {first.component}")
        if program is None:
            _stop(stack, batch)
            taken.append(f"{first.unit} {first.component}: stopped (no supervised program)")
            continue
        # The watcher comes first: the new one holds still while `up` holds it, and should
        # `up` fail halfway it heals what is left stopped and takes over what is left.
        _hand_over(stack, batch, program.process_name)
        taken.append(f"{first.unit} {first.component}: now supervised")
    ensure_started(sup, stack.programs("fencer"))
    return taken


def _revive_etcd(stack: Stack) -> list[str]:
    """Start the supervised etcd members no live process serves. Orphaned members can die at
    any time (a Go program dies on its next log line into the dead supervisord's pipe)."""
    sup = stack.supervisor
    alive = {o.unit for o in find_orphans(stack.identity, sup.pid()) if o.component == "etcd"}
    return ensure_started(sup, [p for p in stack.programs("etcd") if p.group not in alive])


def _etcd_quorum(stack: Stack) -> bool:
    quorum = len(stack.plan.etcd_nodes) // 2 + 1
    return sum(1 for m in stack.snapshot(services=False).etcd if m.healthy) >= quorum


def _ensure_quorum(stack: Stack, progress: Progress) -> None:
    """Before an etcd member is handed over the others must hold a quorum, and Patroni
    needs one to answer at all."""
    started = _revive_etcd(stack)
    if started:
        progress.step(f"starting {', '.join(started)} (no process served them)")

    def quorum() -> bool:
        _revive_etcd(stack)
        return _etcd_quorum(stack)

    stack.until(
        quorum,
        what="etcd quorum",
        timeout_s=60,
        interval_s=0.3,
        hint="hastack logs pg1 etcd",
    )


def _hand_over(stack: Stack, batch: list[StackProcess], process_name: str) -> None:
    """Stop the orphans of one unit and start its supervised program in their place."""
    first = batch[0]
    if first.component == "haproxy":
        # Listeners close at once on SIGUSR1 (soft stop): the supervised HAProxy binds them
        # right away, and the old processes get a few seconds to finish their connections.
        save_server_state(stack)
        _signal_only(batch, signal.SIGUSR1)
        _restart_supervised(stack, process_name)
        _wait_serving(stack, first)
        _stop(stack, batch)
        return
    if first.component == "app":
        drain_quietly(stack, first.unit)
    _stop(stack, batch)
    _restart_supervised(stack, process_name)
    _wait_serving(stack, first)


def _signal_only(batch: list[StackProcess], sig: signal.Signals) -> None:
    for process in batch:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)


def _stop(stack: Stack, batch: list[StackProcess]) -> None:
    component = batch[0].component
    sig = STOP_SIGNAL.get(component, signal.SIGTERM)
    grace = stack.plan.spec.app.stop_wait_s if component == "app" else TERM_GRACE_S
    if component == "haproxy":
        sig, grace = signal.SIGTERM, 5.0  # soft-stopped already: what is left, ends
    signal_and_wait([p.pid for p in batch], sig, stack.clock, grace)


def _restart_supervised(stack: Stack, process_name: str) -> None:
    """Start the supervised program. One that already runs is left alone (the orphan was a
    duplicate); one that kept failing on the orphan's port (BACKOFF, FATAL) starts afresh."""
    sup = stack.supervisor
    state = sup.process(process_name).state
    if state in ("RUNNING", "STARTING"):
        return
    if state in ("BACKOFF", "FATAL"):
        sup.stop(process_name)
    sup.start(process_name, wait=False)


def _wait_serving(stack: Stack, orphan: StackProcess) -> None:
    """Until the supervised replacement serves (quorum back, Patroni answering, ...)."""
    plan = stack.plan
    checks: dict[str, Callable[[], bool]] = {
        "etcd": lambda: _etcd_member_healthy(stack, orphan.unit),
        "patroni": lambda: _patroni_answers(stack, orphan.unit),
        "haproxy": lambda: _answers(stack.haproxy().server_states),
        "pgbouncer": lambda: _answers(stack.pgbouncer().show_pools),
        "redis": lambda: _answers(stack.redis().probe),
    }
    if orphan.component == "app":
        instance = next((i for i in plan.app_instances if i.name == orphan.unit), None)
        if instance is not None:
            wait_ready(stack, instance)
            with contextlib.suppress(Unavailable):
                set_app_state(stack, instance.name, "ready")
        return
    check = checks.get(orphan.component)
    if check is not None:
        stack.until(
            check,
            what=f"supervised {orphan.unit} {orphan.component} serving",
            timeout_s=60,
            interval_s=0.2,
            hint=f"hastack logs {orphan.unit}",
        )


def _answers(call: Callable[[], object]) -> bool:
    try:
        call()
    except HastackError:
        return False
    return True


def _etcd_member_healthy(stack: Stack, node: str) -> bool:
    """Members that died meanwhile are started first: none is healthy without a quorum."""
    _revive_etcd(stack)
    n = stack.plan.node(node)
    url = stack.plan.etcd_url(n)
    return stack.etcd().member_status(url).healthy


def _patroni_answers(stack: Stack, node: str) -> bool:
    try:
        member = stack.patroni(node, timeout_s=1.0).member()
    except (Unavailable, ValueError):
        return False
    return member.get("state") == "running"
