"""Persistence: one store Protocol per aggregate, SQLite (embedded default) and PostgreSQL.

Callers depend on the narrow store they use (``CallStore``, ``NumberStore``,
``TextStore``, ``WebhookStore``, ``IdentityStore``); ``Repository`` is all of
them plus the database lifecycle, and ``open_repository`` opens one.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from trunkline.storage.errors import (
    DuplicateHandle,
    NumberCapReached,
    NumberInUse,
    StorageError,
    TokenCapReached,
)
from trunkline.storage.repository import Repository
from trunkline.storage.stores import (
    CallStore,
    IdentityStore,
    NumberStore,
    TextStore,
    WebhookStore,
)

__all__ = [
    "CallStore",
    "DuplicateHandle",
    "IdentityStore",
    "NumberCapReached",
    "NumberInUse",
    "NumberStore",
    "Repository",
    "StorageError",
    "TextStore",
    "TokenCapReached",
    "WebhookStore",
    "open_repository",
]


async def open_repository(database_url: str, *, migrate: bool = True) -> Repository:
    """Open the backend a URL names, migrated.

    ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``postgresql://…``.
    """
    scheme = urlsplit(database_url).scheme
    repository: Repository
    if scheme == "sqlite":
        from trunkline.storage.sqlite import SqliteRepository

        repository = await SqliteRepository.open(Path(database_url.removeprefix("sqlite:///")))
    elif scheme in ("postgresql", "postgres"):
        from trunkline.storage.postgres import PostgresRepository

        repository = await PostgresRepository.open(database_url)
    else:
        raise ValueError(f"unsupported database URL scheme {scheme!r}")
    if migrate:
        try:
            await repository.migrate()
        except BaseException:
            await repository.close()
            raise
    return repository
