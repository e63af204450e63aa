"""SQLite backend: one WAL-mode file in the data directory, run on its own thread.

Every statement runs on a single worker thread that owns the connection, so
the event loop never waits on disk. An asyncio lock keeps one transaction at a
time on the connection; ``BEGIN IMMEDIATE`` takes the database write lock up
front, which serialises transactions across processes sharing the file too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from trunkline.data_dir import PRIVATE_FILE_MODE
from trunkline.storage.fairness import DatabaseScheduler
from trunkline.storage.migrations import load_migrations
from trunkline.storage.models import TranscriptParty
from trunkline.storage.sql import Row, SqlRepository
from trunkline.storage.sql.base import check_bulk_table, select_list
from trunkline.storage.sql.calls import SEGMENT_COLUMNS
from trunkline.storage.sql.texts import TEXT_COLUMNS

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_WORD = re.compile(r"\w+", re.UNICODE)
BUSY_TIMEOUT_MS = 10_000
SEARCH_CANDIDATES = 1000
_READ_ONLY = ("SELECT ", "WITH ")


def _iso(value: datetime) -> str:
    aware = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.isoformat(timespec="microseconds")


def _parse_timestamp(raw: bytes) -> datetime:
    return datetime.fromisoformat(raw.decode())


def _parse_bool(raw: bytes) -> bool:
    return raw not in (b"0", b"")


def _parse_json(raw: bytes) -> Any:
    return json.loads(raw)


sqlite3.register_converter("TIMESTAMPTZ_ISO", _parse_timestamp)
sqlite3.register_converter("BOOLEAN", _parse_bool)
sqlite3.register_converter("JSON", _parse_json)


def _adapt(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    return value


def number_key(phone_number_id: str) -> str:
    """The single index token that stands for one number (see migration 0004)."""
    return "n" + phone_number_id.replace("-", "")


def fts_words(text: str) -> str | None:
    """All the query's words as an FTS5 expression on the text column that cannot fail."""
    words = _WORD.findall(text)
    if not words:
        return None
    return " ".join('text : "' + word.replace('"', '""') + '"' for word in words)


class _SqliteTx:
    def __init__(self, repository: SqliteRepository) -> None:
        self._repository = repository

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._repository.run(self._repository.fetch_sync, sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        await self._repository.run(self._repository.fetch_sync, sql, args)


class SqliteRepository(SqlRepository):
    backend = "sqlite"
    unique_violation = (sqlite3.IntegrityError,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trunkline-sqlite")
        self._lock = asyncio.Lock()
        self.scheduler = DatabaseScheduler(1)  # one connection: one transaction at a time
        self._connection: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteRepository:
        repository = cls(path)
        await repository.run(repository._connect_sync)
        return repository

    def _connect_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created owner-only first: SQLite gives its -wal and -shm files the database's mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE))
        connection = sqlite3.connect(
            self.path,
            isolation_level=None,
            detect_types=sqlite3.PARSE_DECLTYPES,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._connection = connection

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def _require_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the SQLite repository is closed")
        return self._connection

    def fetch_sync(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        cursor = self._require_connection().execute(
            _PLACEHOLDER.sub(r"?\1", sql), [_adapt(a) for a in args]
        )
        return [dict(zip(r.keys(), tuple(r), strict=True)) for r in cursor.fetchall()]

    def encode_json(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    async def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        check_bulk_table(table, columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        async with self.scheduler.slot(), self._lock:
            return await self.run(self._bulk_insert_sync, sql, rows)

    def _bulk_insert_sync(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        connection = self._require_connection()
        count = 0

        def adapted() -> Iterator[list[Any]]:
            nonlocal count
            for row in rows:
                count += 1
                yield [_adapt(v) for v in row]

        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(sql, adapted())
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return count

    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        if not sql.startswith(_READ_ONLY):  # writes take the write lock up front (BEGIN IMMEDIATE)
            return await super()._fetch(sql, *args)
        # A read is its own transaction in autocommit mode: one trip to the thread instead
        # of three (BEGIN, statement, COMMIT).
        async with self.scheduler.slot(), self._lock:
            return await self.run(self.fetch_sync, sql, args)

    async def _fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self._fetch(sql, *args)
        return rows[0] if rows else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTx]:
        async with self.scheduler.slot(), self._lock:
            begin = asyncio.ensure_future(self.run(self._execute_sync, "BEGIN IMMEDIATE"))
            try:
                await asyncio.shield(begin)
            except asyncio.CancelledError:
                # The thread may still run BEGIN: let it, then undo it, so a cancelled
                # caller never leaves the shared connection inside a transaction.
                with contextlib.suppress(Exception):
                    await begin
                    await self.run(self._execute_sync, "ROLLBACK")
                raise
            try:
                yield _SqliteTx(self)
            except BaseException:
                await asyncio.shield(self.run(self._execute_sync, "ROLLBACK"))
                raise
            await asyncio.shield(self.run(self._execute_sync, "COMMIT"))

    def _execute_sync(self, sql: str) -> None:
        self._require_connection().execute(sql)

    # -- lifecycle ---------------------------------------------------------
    async def migrate(self) -> list[int]:
        async with self._lock:
            return await self.run(self._migrate_sync)

    def _migrate_sync(self) -> list[int]:
        connection = self._require_connection()
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied: list[int] = []
        for migration in load_migrations("sqlite"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                done = connection.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                ).fetchone()
                if done is None:
                    for statement in _statements(migration.sql):
                        connection.execute(statement)
                    connection.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (migration.version, migration.name, _iso(datetime.now(UTC))),
                    )
                    applied.append(migration.version)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return applied

    async def ping(self) -> bool:
        try:
            async with self._lock:
                await self.run(self._execute_sync, "SELECT 1")
        except (sqlite3.Error, RuntimeError):
            return False
        return True

    async def close(self) -> None:
        if self._connection is not None:
            async with self._lock:
                await self.run(self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def rebuild_summaries(self) -> None:
        await super().rebuild_summaries()
        async with self.transaction() as tx:  # merge index segments written by a bulk load
            for table in ("texts_fts", "transcript_segments_fts"):
                await tx.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")

    # -- search --------------------------------------------------------------
    # A search ranks (bm25) the SEARCH_CANDIDATES most recent matches. The
    # first pass matches the words alone, which is cheap; only when that window
    # is full and holds other numbers' rows does a second pass add the number's
    # index token (exact, but it reads the number's whole posting list).
    async def _ranked_hits(
        self,
        fts_table: str,
        source: str,
        query: str,
        phone_number_id: str,
        party: str | None,
        limit: int,
    ) -> list[int]:
        words = fts_words(query)
        if words is None:
            return []
        sql = (
            "WITH m AS MATERIALIZED ("
            f" SELECT rowid AS hit, bm25({fts_table}, 1.0, 0.0) AS score FROM {fts_table}"
            f" WHERE {fts_table} MATCH $1 ORDER BY rowid DESC LIMIT $2),"
            " j AS MATERIALIZED (SELECT m.hit, m.score, src.pn, src.visible, src.party"
            f" FROM m JOIN ({source}) src ON src.hit = m.hit)"
            " SELECT hit, (SELECT COUNT(*) FROM j) AS total,"
            " (SELECT COUNT(*) FROM j WHERE pn <> $3) AS foreign_rows FROM j"
            " WHERE pn = $3 AND visible AND ($4 IS NULL OR party = $4)"
            " ORDER BY score, hit DESC LIMIT $5"
        )
        rows = await self._fetch(sql, words, SEARCH_CANDIDATES, phone_number_id, party, limit)
        window_full_of_others = (
            not rows or rows[0]["total"] >= SEARCH_CANDIDATES and rows[0]["foreign_rows"] > 0
        )
        if window_full_of_others:
            scoped = f'number_key : "{number_key(phone_number_id)}" {words}'
            rows = await self._fetch(sql, scoped, SEARCH_CANDIDATES, phone_number_id, party, limit)
        return [int(r["hit"]) for r in rows]

    async def _rows_in_order(
        self, table: str, columns: Sequence[str], hits: list[int]
    ) -> list[Row]:
        if not hits:
            return []
        rows = await self._fetch(
            f"SELECT rowid AS hit, {select_list(columns)} FROM {table}"
            f" WHERE rowid IN ({', '.join(f'${i}' for i in range(1, len(hits) + 1))})",
            *hits,
        )
        by_hit = {r["hit"]: r for r in rows}
        return [by_hit[h] for h in hits if h in by_hit]

    async def _search_transcript_rows(
        self, phone_number_id: str, query: str, party: TranscriptParty | None, limit: int
    ) -> list[Row]:
        source = (
            "SELECT s.rowid AS hit, c.phone_number_id AS pn, 1 AS visible, s.party AS party"
            " FROM transcript_segments s JOIN calls c ON c.id = s.call_id"
        )
        hits = await self._ranked_hits(
            "transcript_segments_fts", source, query, phone_number_id, party, limit
        )
        return await self._rows_in_order("transcript_segments", SEGMENT_COLUMNS, hits)

    async def _search_text_rows(self, phone_number_id: str, query: str, limit: int) -> list[Row]:
        source = (
            "SELECT rowid AS hit, phone_number_id AS pn, status <> 'deleted' AS visible,"
            " NULL AS party FROM texts"
        )
        hits = await self._ranked_hits("texts_fts", source, query, phone_number_id, None, limit)
        return await self._rows_in_order("texts", TEXT_COLUMNS, hits)


def _statements(script: str) -> list[str]:
    """Split a migration script into complete statements (triggers keep their bodies)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        if not pending and line.strip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError("migration ends with an incomplete statement")
    return statements
