"""The ``trunkline`` fixture's teardown stops an instance fully, whatever its test left."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway import conftest
from tests.gateway.conftest import stop_fully
from trunkline.daemon import ShutdownSignal


@pytest.fixture(autouse=True)
def short_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "STOP_DRAIN_SECONDS", 0.2)
    monkeypatch.setattr(conftest, "STOP_HURRIED_SECONDS", 0.2)


async def test_a_drain_that_ends_is_all_it_takes() -> None:
    shutdown = ShutdownSignal()
    task = asyncio.create_task(shutdown.requested.wait())
    await stop_fully(task, shutdown)  # type: ignore[arg-type]
    assert task.done() and not shutdown.hurried.is_set()


async def test_a_drain_that_does_not_end_is_hurried() -> None:
    shutdown = ShutdownSignal()
    task = asyncio.create_task(shutdown.hurried.wait())  # a live call that never hangs up
    await stop_fully(task, shutdown)  # type: ignore[arg-type]
    assert task.done() and not task.cancelled()


async def test_what_ignores_both_is_cancelled_unwound_and_reported() -> None:
    shutdown = ShutdownSignal()
    unwound = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # the exits of serve()'s stack still run
            unwound.set()

    task = asyncio.create_task(stuck())
    with pytest.raises(AssertionError, match="did not stop"):
        await stop_fully(task, shutdown)
    assert task.cancelled() and unwound.is_set()


async def test_a_task_its_test_cancelled_is_not_awaited_again() -> None:
    shutdown = ShutdownSignal()
    task = asyncio.create_task(asyncio.Event().wait())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(task, 0.05)  # as a test's own wait_for does when it times out
    await stop_fully(task, shutdown)  # no CancelledError into the teardown


async def test_an_error_of_the_served_instance_fails_the_test() -> None:
    shutdown = ShutdownSignal()

    async def failing() -> None:
        await shutdown.requested.wait()
        raise RuntimeError("shutdown broke")

    task = asyncio.create_task(failing())
    with pytest.raises(RuntimeError, match="shutdown broke"):
        await stop_fully(task, shutdown)
