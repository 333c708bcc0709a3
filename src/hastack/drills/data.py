"""The drill's tables, and reading back what every node holds once the cluster converged."""

from __future__ import annotations

import time
from collections import Counter

import psycopg

from hastack.drills.checker import NodeData
from hastack.drills.workload import ACCOUNTS, INITIAL_BALANCE
from hastack.render.secrets import Secrets
from hastack.runtime.database import superuser_connect
from hastack.spec import roles
from hastack.spec.plan import StackPlan

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


class DrillDataError(Exception):
    pass


def prepare(plan: StackPlan, secrets: Secrets, leader: str) -> None:
    """Create (as app_owner) and reset the drill tables on the leader."""
    with superuser_connect(plan, plan.node(leader), secrets, plan.spec.postgres.database) as conn:
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


def wait_converged(plan: StackPlan, secrets: Secrets, leader: str, timeout_s: float = 60) -> None:
    """Until every replica has replayed the leader's current WAL position."""
    db = plan.spec.postgres.database
    with superuser_connect(plan, plan.node(leader), secrets, db) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    target = row[0] if row else None
    deadline = time.monotonic() + timeout_s
    pending = [n.name for n in plan.postgres_nodes if n.name != leader]
    while pending and time.monotonic() < deadline:
        still = []
        for name in pending:
            try:
                with superuser_connect(plan, plan.node(name), secrets, db) as conn:
                    done = conn.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                    ).fetchone()
            except psycopg.Error:
                done = None
            if not (done and done[0]):
                still.append(name)
        pending = still
        if pending:
            time.sleep(0.2)
    if pending:
        raise DrillDataError(f"{pending} did not replay the leader's WAL within {timeout_s:.0f} s")


def read_node(plan: StackPlan, secrets: Secrets, name: str, timeline: int | None) -> NodeData:
    with superuser_connect(plan, plan.node(name), secrets, plan.spec.postgres.database) as conn:
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
