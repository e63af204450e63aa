"""Real storage backends for tests: a SQLite file, or a private schema on the PostgreSQL server.

PostgreSQL comes from ``TRUNKLINE_TEST_POSTGRES_URL`` (default: the local
server at 127.0.0.1:5432, database ``test``). Locally a missing server skips
the PostgreSQL half; in CI it fails (``tests.conftest.require``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from tests.conftest import require
from trunkline.storage.postgres import PostgresRepository
from trunkline.storage.repository import Repository
from trunkline.storage.sqlite import SqliteRepository

POSTGRES_URL = os.environ.get(
    "TRUNKLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


async def _postgres_reachable() -> bool:
    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema, dropped afterwards; yields its name."""
    require(await _postgres_reachable(), f"PostgreSQL at {POSTGRES_URL}")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield schema
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@asynccontextmanager
async def make_repository(backend: str, tmp_path: Path) -> AsyncIterator[Repository]:
    """A migrated, empty repository of the named backend, closed afterwards."""
    repository: Repository
    if backend == "sqlite":
        repository = await SqliteRepository.open(tmp_path / f"db-{uuid.uuid4().hex[:8]}.sqlite")
        try:
            await repository.migrate()
            yield repository
        finally:
            await repository.close()
        return
    assert backend == "postgresql", backend
    async with postgres_schema() as schema:
        repository = await PostgresRepository.open(POSTGRES_URL, search_path=schema, max_size=4)
        try:
            await repository.migrate()
            yield repository
        finally:
            await repository.close()
