"""PostgreSQL backend on an asyncpg pool, with tsvector full-text search.

Row locks (``FOR UPDATE``) serialise the number cap and transcript sequence
per organisation and per call; migrations hold an advisory lock so several
processes starting at once apply each version exactly once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from trunkline.storage.fairness import DatabaseScheduler
from trunkline.storage.migrations import load_migrations
from trunkline.storage.models import TranscriptParty
from trunkline.storage.sql import Row, SqlRepository
from trunkline.storage.sql.base import check_bulk_table, select_list
from trunkline.storage.sql.calls import SEGMENT_COLUMNS
from trunkline.storage.sql.texts import TEXT_COLUMNS

MIGRATION_LOCK_KEY = 0x7472756E6B  # "trunk": one advisory lock id for schema changes
POOL_MAX_SIZE = 10
COMMAND_TIMEOUT_SECONDS = 30.0
SEARCH_CANDIDATES = 1000
RECENT_WINDOW = 8_000  # texts checked newest-first before the GIN index is asked


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])  # the binary jsonb format is a version byte, then text


async def _init_connection(connection: asyncpg.Connection) -> None:
    # Binary format so COPY (bulk_insert) can carry jsonb as well as ordinary queries.
    await connection.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


class _PostgresTx:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._connection.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row = await self._connection.fetchrow(sql, *args)
        return None if row is None else row

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute(sql, *args)


class PostgresRepository(SqlRepository):
    backend = "postgresql"
    row_lock = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    unique_violation = (asyncpg.UniqueViolationError,)

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.scheduler = DatabaseScheduler(pool.get_max_size())  # a slot per pooled connection

    @classmethod
    async def open(
        cls, dsn: str, *, max_size: int = POOL_MAX_SIZE, search_path: str | None = None
    ) -> PostgresRepository:
        """Connect a pool; ``search_path`` keeps trunkline's tables in one schema."""
        server_settings = {"search_path": search_path} if search_path else None
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=max_size,
            init=_init_connection,
            command_timeout=COMMAND_TIMEOUT_SECONDS,
            server_settings=server_settings,
        )
        return cls(pool)

    def encode_json(self, value: Any) -> Any:
        return value

    async def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        check_bulk_table(table, columns)
        records = [
            tuple(json.dumps(v) if isinstance(v, dict | list) else v for v in r) for r in rows
        ]
        async with (
            self.scheduler.slot(),
            self._pool.acquire() as connection,
            connection.transaction(),
        ):
            await connection.copy_records_to_table(table, records=records, columns=list(columns))
        return len(records)

    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        # One statement commits on its own: one round trip instead of three (BEGIN, COMMIT).
        async with self.scheduler.slot(), self._pool.acquire() as connection:
            return list(await connection.fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self.scheduler.slot(), self._pool.acquire() as connection:
            row: Row | None = await connection.fetchrow(sql, *args)
            return row

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTx]:
        async with (
            self.scheduler.slot(),
            self._pool.acquire() as connection,
            connection.transaction(),
        ):
            yield _PostgresTx(connection)

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        async with self._pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                for migration in load_migrations("postgresql"):
                    async with connection.transaction():
                        done = await connection.fetchval(
                            "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
                        )
                        if done is None:
                            await connection.execute(migration.sql)
                            await connection.execute(
                                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                migration.version,
                                migration.name,
                            )
                            applied.append(migration.version)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        return applied

    async def ping(self) -> bool:
        try:
            async with self._pool.acquire(timeout=5) as connection:
                await connection.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        await self._pool.close()

    # Like SQLite, rank the number's SEARCH_CANDIDATES most recent matches.
    async def _search_transcript_rows(
        self, phone_number_id: str, query: str, party: TranscriptParty | None, limit: int
    ) -> list[Row]:
        args: list[Any] = [query, phone_number_id, SEARCH_CANDIDATES]
        party_clause = ""
        if party is not None:
            args.append(party)
            party_clause = " AND s.party = $4"
        args.append(limit)
        return await self._fetch(
            f"SELECT {select_list(SEGMENT_COLUMNS, 'm')} FROM ("
            f" SELECT {select_list(SEGMENT_COLUMNS, 's')}, ts_rank(s.search, q) AS score"
            " FROM transcript_segments s JOIN calls c ON c.id = s.call_id,"
            " websearch_to_tsquery('english', $1) q"
            f" WHERE s.search @@ q AND c.phone_number_id = $2{party_clause}"
            " ORDER BY s.created_at DESC, s.seq DESC LIMIT $3) m"
            f" ORDER BY m.score DESC, m.created_at DESC, m.seq LIMIT ${len(args)}",
            *args,
        )

    async def _search_text_rows(self, phone_number_id: str, query: str, limit: int) -> list[Row]:
        """The SEARCH_CANDIDATES most recent matches, ranked; the recent window first.

        A common word matches so many texts that fetching every match through the
        GIN index and sorting them by date dominates (hundreds of milliseconds at a
        million texts). The number's RECENT_WINDOW newest texts are checked first,
        along the (number, created_at) index: if they hold SEARCH_CANDIDATES matches,
        those *are* the most recent matches; if the number has no more texts than
        that, they are all of them. Otherwise (a rarer word) the GIN index finds
        the few matches quickly.
        """
        rows = await self._fetch(
            "WITH recent AS ("
            " SELECT t.id, t.created_at, t.search FROM texts t"
            " WHERE t.phone_number_id = $2 AND t.status <> 'deleted'"
            " ORDER BY t.created_at DESC LIMIT $5),"
            " hits AS ("
            " SELECT r.id, r.created_at, ts_rank(r.search, q) AS score"
            " FROM recent r, websearch_to_tsquery('english', $1) q"
            " WHERE r.search @@ q ORDER BY r.created_at DESC LIMIT $3)"
            f" SELECT {select_list(TEXT_COLUMNS, 't')},"
            " (SELECT count(*) FROM hits) AS hit_count,"
            " (SELECT count(*) FROM recent) AS window_rows"
            " FROM hits h JOIN texts t ON t.id = h.id"
            " ORDER BY h.score DESC, h.created_at DESC LIMIT $4",
            query,
            phone_number_id,
            SEARCH_CANDIDATES,
            limit,
            RECENT_WINDOW,
        )
        if rows and (
            rows[0]["hit_count"] >= SEARCH_CANDIDATES or rows[0]["window_rows"] < RECENT_WINDOW
        ):
            return rows
        if not rows and await self._texts_fit_window(phone_number_id):
            return rows  # every text was checked: nothing matches
        return await self._fetch(
            f"SELECT {select_list(TEXT_COLUMNS, 'm')} FROM ("
            f" SELECT {select_list(TEXT_COLUMNS, 't')}, ts_rank(t.search, q) AS score"
            " FROM texts t, websearch_to_tsquery('english', $1) q"
            " WHERE t.search @@ q AND t.phone_number_id = $2 AND t.status <> 'deleted'"
            " ORDER BY t.created_at DESC LIMIT $3) m"
            " ORDER BY m.score DESC, m.created_at DESC LIMIT $4",
            query,
            phone_number_id,
            SEARCH_CANDIDATES,
            limit,
        )

    async def _texts_fit_window(self, phone_number_id: str) -> bool:
        row = await self._fetchrow(
            "SELECT count(*) AS n FROM (SELECT 1 FROM texts"
            " WHERE phone_number_id = $1 AND status <> 'deleted' LIMIT $2) w",
            phone_number_id,
            RECENT_WINDOW,
        )
        return row is not None and int(row["n"]) < RECENT_WINDOW
