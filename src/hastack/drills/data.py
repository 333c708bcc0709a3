"""The drill's tables, and reading back what every node holds once the cluster converged."""

from __future__ import annotations

from collections import Counter

import psycopg

from hastack.drills.checker import NodeData
from hastack.drills.workload import ACCOUNTS, INITIAL_BALANCE
from hastack.errors import HastackError
from hastack.runtime.stack import Stack
from hastack.spec import roles

EXPECTED_TOTAL = ACCOUNTS * INITIAL_BALANCE

SCHEMA = [
    # No primary key on purpose: a write applied twice must show up as a duplicate.
    "CREATE TABLE IF NOT EXISTS hastack_drill_writes (id bigint NOT NULL, writer text NOT NULL)",
    "CREATE INDEX IF NOT EXISTS hastack_drill_writes_id ON hastack_drill_writes (id)",
    "CREATE TABLE IF NOT EXISTS hastack_drill_accounts "
    "(id int PRIMARY KEY, balance bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS hastack_drill_transfers "
    "(id bigint NOT NULL, src int NOT NULL, dst int NOT NULL, amount int NOT NULL)",
]


def prepare(stack: Stack, leader: str) -> None:
    """Create (as app_owner) and reset the drill tables on the leader."""
    with stack.connect(leader) as conn:
        conn.execute(f"SET ROLE {roles.OWNER}")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute(
            "TRUNCATE hastack_drill_writes, hastack_drill_accounts, hastack_drill_transfers"
        )
        conn.execute(
            "INSERT INTO hastack_drill_accounts SELECT g, %s FROM generate_series(1, %s) g",
            (INITIAL_BALANCE, ACCOUNTS),
        )


def wait_converged(stack: Stack, leader: str, timeout_s: float = 60) -> None:
    """Until every replica has replayed the leader's current WAL position."""
    with stack.connect(leader) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    target = row[0] if row else None

    def behind() -> tuple[bool | None, str]:
        pending = []
        for node in stack.plan.postgres_nodes:
            if node.name == leader:
                continue
            try:
                with stack.connect(node.name) as conn:
                    done = conn.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                    ).fetchone()
            except (psycopg.Error, HastackError):
                done = None
            if not (done and done[0]):
                pending.append(node.name)
        return (None, f"not yet at {target}: {pending}") if pending else (True, "")

    stack.wait(
        behind,
        what="every replica replaying the leader's WAL",
        timeout_s=timeout_s,
        hint="hastack status",
    )


def read_node(stack: Stack, name: str, timeline: int | None) -> NodeData:
    try:
        return _read_node(stack, name, timeline)
    except psycopg.Error as exc:
        raise HastackError(f"cannot read the drill's data on {name}: {exc}".strip()) from None


def _read_node(stack: Stack, name: str, timeline: int | None) -> NodeData:
    with stack.connect(name) as conn:
        writes = Counter(
            int(str(r[0])) for r in conn.execute("SELECT id FROM hastack_drill_writes")
        )
        transfers = Counter(
            int(str(r[0])) for r in conn.execute("SELECT id FROM hastack_drill_transfers")
        )
        row = conn.execute(
            "SELECT coalesce(sum(balance), 0), "
            "md5(coalesce(string_agg(id || ':' || balance, ',' ORDER BY id), '')) "
            "FROM hastack_drill_accounts"
        ).fetchone()
    assert row is not None
    return NodeData(
        node=name,
        write_ids=writes,
        transfer_ids=transfers,
        balance_total=int(str(row[0])),
        accounts_digest=str(row[1]),
        timeline=timeline,
    )
