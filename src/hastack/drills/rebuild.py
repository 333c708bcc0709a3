"""The replica-rebuild drill: an asynchronous replica loses its data directory (a disk
gone). Nothing is repaired by the drill: Patroni finds the directory empty and rebuilds the
replica by itself, from the backup repository (`create_replica_methods`: pgbackrest first),
then it catches up from the archive and the leader. The drill only watches for that."""

from __future__ import annotations

import shutil
import signal
from typing import Any

import psutil

from hastack.drills.faults import DrillContext, signal_all
from hastack.errors import HastackError
from hastack.runtime.files import count_in_file, ensure_dir

FACTS = "rebuild"
CREATED_BY_PGBACKREST = "replica has been created using pgbackrest"
REBUILD_DEADLINE_S = 180.0


def _log_count(ctx: DrillContext, node: str) -> int:
    return count_in_file(ctx.stack.plan.paths.program_log(f"{node}-patroni"), CREATED_BY_PGBACKREST)


def _postgres_pids(ctx: DrillContext, node: str) -> list[int]:
    user = ctx.node(node).user
    return [
        p.pid
        for p in psutil.process_iter(["username", "name"])
        if p.info["username"] == user and p.info["name"] in ("postgres", "postmaster")
    ]


def async_replica(ctx: DrillContext) -> str:
    replicas = [
        n.name
        for n in ctx.stack.plan.postgres_nodes
        if n.name not in (ctx.primary, ctx.sync_standby)
    ]
    if not replicas:
        raise HastackError("the cluster has no asynchronous replica", "hastack status")
    return replicas[0]


def lose_data_directory(ctx: DrillContext) -> None:
    """The replica's data directory is gone at once, then its PostgreSQL dies (a lost disk);
    an empty directory is all that is left (a new disk). The directory is renamed away, not
    deleted in place: deleting files while PostgreSQL still writes them raced with it and
    left half a directory, a different fault."""
    name = async_replica(ctx)
    node = ctx.node(name)
    ctx.history.facts[FACTS] = {"node": name, "before": _log_count(ctx, name)}
    lost = node.paths.pgdata.with_name("pgdata.lost-in-drill")
    if lost.exists():
        shutil.rmtree(lost)
    node.paths.pgdata.rename(lost)
    ensure_dir(node.paths.pgdata, node.user, 0o700)
    pids = _postgres_pids(ctx, name)
    signal_all(pids, signal.SIGKILL)
    ctx.history.mark("fault", f"{name}'s data directory destroyed, PostgreSQL killed", node=name)
    ctx.history.facts[FACTS]["t_fault"] = ctx.stack.clock.monotonic()
    psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=10)
    shutil.rmtree(lost)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def await_rebuild(ctx: DrillContext) -> None:
    """Watch (never act) until Patroni says the replica was recreated from the repository."""
    facts: dict[str, Any] = ctx.history.facts[FACTS]
    name = str(facts["node"])
    before = int(facts["before"])

    def rebuilt() -> bool:
        return _log_count(ctx, name) > before

    try:
        at = ctx.stack.until(
            rebuilt,
            what=f"{name} recreated from the backup repository",
            timeout_s=REBUILD_DEADLINE_S,
            interval_s=0.2,
        )
    except HastackError:
        facts["rebuilt_s"] = None
        return
    facts["rebuilt_s"] = round(at - facts["t_fault"], 2)
    ctx.history.mark("note", f"{name} recreated from the backup repository", node=name, t=at)


def rebuild_expectations(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Pure: what the replica-rebuild drill must show."""
    rebuild = facts.get(FACTS) or {}
    took = rebuild.get("rebuilt_s")
    node = rebuild.get("node", "the replica")
    what = (
        f"{node} recreated from the backup repository by Patroni ({took} s after the fault)"
        if took is not None
        else f"{node} recreated from the backup repository within {REBUILD_DEADLINE_S:.0f} s"
    )
    return [{"what": what, "ok": took is not None}]
