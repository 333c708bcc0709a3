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
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hastack.errors import HastackError
from hastack.render.patroni import RestoreBootstrap, render_patroni
from hastack.runtime.files import ensure_dir, parent_fd, write_atomic
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
    content = render_patroni(stack.plan, node, stack.secrets, restore)
    write_atomic(node.paths.patroni_config, content, node.user, 0o600)


def bootstrap_from_repository(kind: str, value: str | None) -> RestoreBootstrap:
    return RestoreBootstrap(kind, value)


def discard_aside(asides: list[Aside]) -> list[str]:
    """Remove what was set aside (the restored cluster is healthy); the paths removed.
    shutil.rmtree never follows a symlink and works through descriptors."""
    removed = []
    for aside in asides:
        path = Path(aside.moved_to)
        if path.is_symlink() or not path.is_dir():
            continue
        shutil.rmtree(path)
        removed.append(str(path))
    return removed


def holds_data(node: Node) -> bool:
    """The node's data directory holds a PostgreSQL cluster."""
    return (node.paths.pgdata / "PG_VERSION").is_file()


def leftover_asides(stack: Stack) -> list[str]:
    """Data set aside by a cluster restore that did not finish (for `status`)."""
    found = []
    for node in stack.plan.nodes:
        try:
            names = sorted(p.name for p in node.paths.root.iterdir() if ASIDE_MARK in p.name)
        except OSError:
            continue
        found += [str(node.paths.root / n) for n in names]
    return found
