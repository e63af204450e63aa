"""A caller cancelled mid-transaction must not leave SQLite's shared connection in it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from trunkline.storage.sqlite import SqliteRepository


async def test_cancelling_callers_while_they_begin_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    repository = await SqliteRepository.open(tmp_path / "t.db")
    try:
        await repository.migrate()

        async def hold() -> None:
            async with repository.transaction():
                await asyncio.sleep(1)

        for _ in range(20):
            task = asyncio.create_task(hold())
            await asyncio.sleep(0)  # it has the lock and waits for BEGIN on the thread
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with repository.transaction() as tx:  # raised "within a transaction" before
            await tx.fetch("SELECT 1 AS one")
        organization = await repository.create_organization("still works")
        assert organization.name == "still works"
    finally:
        await repository.close()
