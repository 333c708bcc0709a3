"""Near the end, because it stops the shared stack: down + up keeps the data (test_95 then
loses its region, test_99 destroys it)."""

from __future__ import annotations

import uuid

import psycopg

from hastack.runtime.orphans import stack_processes
from tests.integration.conftest import Stack


def test_down_then_up_keeps_the_data(stack: Stack) -> None:
    env = stack.run("env", "--json").json()
    stack.ensure_scratch_table()
    marker = uuid.uuid4().hex
    with psycopg.connect(env["DATABASE_URL"], prepare_threshold=None) as conn:
        conn.execute("INSERT INTO it_rows VALUES (%s, 42)", (marker,))

    down = stack.run("down")
    assert down.code == 0, down.err
    assert "stopped" in down.out
    assert stack_processes(stack.hs.identity) == []
    assert stack.run("status").code == 2

    up = stack.run("up")
    assert up.code == 0, up.err
    with psycopg.connect(env["DATABASE_URL"], prepare_threshold=None) as conn:
        assert conn.execute("SELECT v FROM it_rows WHERE id = %s", (marker,)).fetchone() == (42,)
