"""Persistence: one store Protocol per aggregate, SQLite (embedded default) and PostgreSQL.

Callers depend on the narrow store they use (``CallStore``, ``NumberStore``,
``TextStore``, ``WebhookStore``, ``IdentityStore``); ``Repository`` is all of
them plus the database lifecycle, and ``open_repository`` opens one.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from trunkline.storage.errors import (
    DatabaseUnavailable,
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
    "DatabaseUnavailable",
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
    "redact_url",
]


async def open_repository(database_url: str, *, migrate: bool = True) -> Repository:
    """Open the backend a URL names, migrated.

    ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``postgresql://…``.
    A database that cannot be opened raises ``DatabaseUnavailable`` with the reason
    (the URL's password is not in it).
    """
    scheme = urlsplit(database_url).scheme
    repository: Repository
    if scheme == "sqlite":
        import sqlite3

        from trunkline.storage.sqlite import SqliteRepository

        path = Path(database_url.removeprefix("sqlite:///"))
        try:
            repository = await SqliteRepository.open(path)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(f"cannot open SQLite database {path}: {exc}") from exc
    elif scheme in ("postgresql", "postgres"):
        import asyncpg

        from trunkline.storage.postgres import PostgresRepository

        try:
            repository = await PostgresRepository.open(database_url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = str(exc) or type(exc).__name__
            raise DatabaseUnavailable(
                f"cannot reach PostgreSQL at {redact_url(database_url)}: {reason}"
            ) from exc
    else:
        raise ValueError(f"unsupported database URL scheme {scheme!r}")
    if migrate:
        try:
            await repository.migrate()
        except BaseException:
            await repository.close()
            raise
    return repository


def redact_url(database_url: str) -> str:
    """The database URL with its password (if any) replaced by ``***``."""
    parts = urlsplit(database_url)
    credentials, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in credentials:
        return database_url
    user = credentials.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
