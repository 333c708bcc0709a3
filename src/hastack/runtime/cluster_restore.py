"""The mechanics of rebuilding a whole cluster from the backup repository (`hastack restore
--target cluster`); ops/restore.py runs them in order.

The current data directories are never deleted here before the restored cluster is healthy:
each is renamed aside (same directory, same filesystem: instant, nothing copied) and removed
only by `discard_aside` at the very end. The DCS must hold no cluster, or Patroni would wait
for a leader that no longer exists instead of bootstrapping: with etcd quorum, the stack's
keys are deleted; without it (every member lost), the members start afresh from empty data
directories (the old ones set aside too).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hastack.errors import HastackError
from hastack.render.patroni import RestoreBootstrap, render_patroni
from hastack.runtime.files import (
    count_in_file,
    ensure_dir,
    parent_fd,
    read_regular,
    write_atomic,
)
from hastack.runtime.hostlab import lab_seat
from hastack.runtime.snapshot import postmaster_pid
from hastack.spec.plan import Node

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack

ASIDE_MARK = ".before-restore-"


@dataclass(frozen=True)
class Aside:
    node: str
    what: str
    """pgdata or etcd."""
    original: str
    moved_to: str


def aside_name(path: Path, stamp: str) -> Path:
    return path.with_name(f"{path.name}{ASIDE_MARK}{stamp}")


def set_aside(node: Node, path: Path, what: str, stamp: str) -> Aside | None:
    """Rename `path` aside within its (node-owned) directory, without following a symlink
    another user may have put there; None when there is nothing to set aside. An empty
    directory in its place, the node's, 0700."""
    target = aside_name(path, stamp)
    with parent_fd(path) as fd:
        try:
            os.rename(path.name, target.name, src_dir_fd=fd, dst_dir_fd=fd)
        except FileNotFoundError:
            moved = False
        else:
            moved = True
    ensure_dir(path, node.user, 0o700)
    return Aside(node.name, what, str(path), str(target)) if moved else None


def set_aside_pgdata(stack: Stack, stamp: str, into: list[Aside]) -> None:
    """Each node's data directory aside, appended to `into` as it moves (a failure half way
    still names what moved). Refused while a PostgreSQL still runs on it."""
    for node in stack.plan.postgres_nodes:
        if postmaster_pid(node) is not None:
            raise HastackError(
                f"PostgreSQL still runs on {node.name}: its data directory is not set aside",
                f"hastack logs {node.name} postgres",
            )
        moved = set_aside(node, node.paths.pgdata, "pgdata", stamp)
        if moved is not None:
            into.append(moved)


def set_aside_etcd(stack: Stack, stamp: str, into: list[Aside]) -> None:
    for node in stack.plan.etcd_nodes:
        moved = set_aside(node, node.paths.etcd_data, "etcd", stamp)
        if moved is not None:
            into.append(moved)


def clear_dcs(stack: Stack) -> int:
    """Delete every key of the stack's cluster in etcd (needs quorum); how many."""
    plan = stack.plan
    return stack.etcd(timeout_s=3.0).delete_prefix(f"{plan.etcd_namespace}{plan.name}/")


def write_patroni_config(stack: Stack, node: Node, restore: RestoreBootstrap | None) -> None:
    """The node's Patroni config, with the bootstrap from the repository or without it
    (the config `up` writes)."""
    content = render_patroni(stack.plan, node, stack.secrets, restore, lab_seat(stack.plan))
    write_atomic(node.paths.patroni_config, content, node.user, 0o600)


def bootstrap_from_repository(kind: str, value: str | None) -> RestoreBootstrap:
    return RestoreBootstrap(kind, value)


BOOTSTRAP_FAILED = "failed attempt to bootstrap the cluster"
"""Patroni's log line when it gives up a bootstrap (it exits; supervisord starts it again)."""


def bootstrap_failures(log: Path) -> int:
    return count_in_file(log, BOOTSTRAP_FAILED)


def log_lines(log: Path, words: tuple[str, ...], count: int = 6) -> list[str]:
    """The last `count` lines of a log that contain one of `words`."""
    raw = read_regular(log)
    lines = [] if raw is None else raw.decode(errors="replace").splitlines()
    return [line[:300] for line in lines if any(w in line for w in words)][-count:]


def discard_aside(asides: list[Aside]) -> list[str]:
    """Remove what was set aside (the restored cluster is healthy); the paths removed.
    shutil.rmtree never follows a symlink and works through descriptors."""
    return remove_dirs([a.moved_to for a in asides])


def holds_data(node: Node) -> bool:
    """The node's data directory holds a PostgreSQL cluster."""
    return (node.paths.pgdata / "PG_VERSION").is_file()


PATRONI_MOVED = re.compile(r"^pgdata_\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$")
"""Where Patroni moves a data directory after a failed bootstrap."""


def leftover_asides(stack: Stack, patroni_moved: bool = False) -> list[str]:
    """Data set aside by a cluster restore that did not finish (for `status`); with
    `patroni_moved`, also what Patroni moved away after a failed bootstrap."""
    found = []
    for node in stack.plan.nodes:
        try:
            names = sorted(
                p.name
                for p in node.paths.root.iterdir()
                if ASIDE_MARK in p.name or (patroni_moved and PATRONI_MOVED.match(p.name))
            )
        except OSError:
            continue
        found += [str(node.paths.root / n) for n in names]
    return found


def remove_dirs(paths: list[str]) -> list[str]:
    """Remove directories (never through a symlink); the ones removed."""
    removed = []
    for raw in paths:
        path = Path(raw)
        if path.is_symlink() or not path.is_dir():
            continue
        shutil.rmtree(path)
        removed.append(raw)
    return removed
