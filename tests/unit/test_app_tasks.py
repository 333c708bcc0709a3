"""Background tasks end before the pools close: a cancel request a task sends on its way
out is finished first (app/tasks.py: PgBouncer 1.18 dies of one cut off)."""

from __future__ import annotations

import asyncio

import pytest

from hastack.app.tasks import stop_task


def test_a_task_that_ends_by_itself_within_the_grace_is_not_cancelled() -> None:
    async def scenario() -> bool:
        closing = asyncio.Event()

        async def watcher() -> None:
            await closing.wait()
            await asyncio.sleep(0.05)  # the query under way finishes

        task = asyncio.create_task(watcher())
        await asyncio.sleep(0)
        closing.set()
        await stop_task(task, grace_s=1.0)
        return task.done() and not task.cancelled()

    assert asyncio.run(scenario())


def test_a_cancelled_task_has_finished_its_cleanup_when_stop_returns() -> None:
    async def scenario() -> list[str]:
        steps: list[str] = []

        async def in_a_query() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.sleep(0.1)  # as psycopg: the cancel request sent and answered
                steps.append("cancel answered")
                raise

        task = asyncio.create_task(in_a_query())
        await asyncio.sleep(0)
        await stop_task(task)
        steps.append("pools closed")
        return steps

    assert asyncio.run(scenario()) == ["cancel answered", "pools closed"]


def test_a_task_that_failed_is_stopped_quietly() -> None:
    async def scenario() -> bool:
        async def broken() -> None:
            raise RuntimeError("boom")

        task = asyncio.create_task(broken())
        await asyncio.sleep(0)
        await stop_task(task, grace_s=0.5)
        return task.done()

    assert asyncio.run(scenario())


def test_a_failed_task_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async def broken() -> None:
            raise RuntimeError("boom")

        task = asyncio.create_task(broken(), name="lag-watcher")
        await asyncio.sleep(0)
        await stop_task(task)

    asyncio.run(scenario())
    assert "background task lag-watcher had failed" in caplog.text
    assert "RuntimeError: boom" in caplog.text
