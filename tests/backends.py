"""Real storage backends for tests: a SQLite file, or a private schema on a PostgreSQL server.

PostgreSQL is the session's own throwaway cluster (``tests.postgres_server``), or
the server ``TRUNKLINE_TEST_POSTGRES_URL`` names. Locally, missing server binaries
skip the PostgreSQL half; in CI they fail the test (``tests.conftest.require``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from tests import postgres_server
from tests.conftest import require
from trunkline.storage.postgres import PostgresRepository
from trunkline.storage.repository import Repository
from trunkline.storage.sqlite import SqliteRepository

BACKENDS = ("sqlite", "postgresql")


async def postgres_test_url() -> str:
    """The test PostgreSQL server's URL, starting the throwaway cluster on first use."""
    url = await asyncio.to_thread(postgres_server.postgres_url)
    require(url is not None, postgres_server.unavailable_reason())
    assert url is not None
    return url


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema, dropped afterwards; yields its name."""
    url = await postgres_test_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(url)
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
        url = await postgres_test_url()
        repository = await PostgresRepository.open(url, search_path=schema, max_size=4)
        try:
            await repository.migrate()
            yield repository
        finally:
            await repository.close()
