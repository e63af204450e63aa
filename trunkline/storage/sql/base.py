"""What every SQL store shares: the transaction, the dialect hooks, the outbox write.

Statements use ``$1``-style placeholders (the SQLite backend rewrites them to
``?1``). Each backend supplies a connection primitive (``Tx``) inside
``transaction`` (which holds a slot of the fair ``DatabaseScheduler``), the
row-lock clauses, the unique-violation exception types, how it wants JSON
parameters, how it reads computed timestamps and how it bulk-loads rows.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from trunkline.storage.fairness import DatabaseScheduler
from trunkline.storage.models import EventDraft

Row = Mapping[str, Any]
M = TypeVar("M")


class Tx(Protocol):
    """One connection inside one transaction."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> None: ...


def columns_of(model: type[Any], *, skip: Sequence[str] = ()) -> tuple[str, ...]:
    """The dataclass's field names, which are its table's column names."""
    return tuple(f.name for f in dataclasses.fields(model) if f.name not in skip)


EVENT_COLUMNS = columns_of(EventDraft)
BULK_TABLES = frozenset({"texts", "transcript_segments", "calls", "events"})


def check_bulk_table(table: str, columns: Sequence[str]) -> None:
    if table not in BULK_TABLES or not all(c.isidentifier() for c in columns):
        raise ValueError(f"bulk insert into {table!r} is not supported")


def select_list(columns: Sequence[str], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + c for c in columns)


def placeholders(count: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


def set_clause(names: Sequence[str], start: int) -> str:
    """``a = $start, b = $start+1, …`` for an UPDATE's SET clause."""
    return ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=start))


def as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def model_from_row(model: type[M], columns: Sequence[str], row: Row) -> M:
    return model(**{c: row[c] for c in columns})


def sanitise_limit(limit: int, offset: int = 0) -> tuple[int, int]:
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    return limit, offset


class SqlStoreBase(abc.ABC):
    """The connection, transaction and dialect hooks the per-aggregate SQL stores share."""

    row_lock = ""  # " FOR UPDATE" where the backend has row locks
    skip_locked = ""  # " FOR UPDATE SKIP LOCKED" where concurrent claimers must not collide
    unique_violation: tuple[type[BaseException], ...] = ()
    scheduler: DatabaseScheduler  # every transaction holds one of its slots

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A connection in a serialisable-enough transaction, committed on success."""

    @abc.abstractmethod
    def encode_json(self, value: Any) -> Any:
        """How this backend wants a JSON parameter."""

    @abc.abstractmethod
    async def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> int:
        """Load many rows in one transaction (imports, benchmarks); returns the count.

        Values are in database form (timestamps as datetimes, JSON already
        encoded with ``encode_json``). Run ``rebuild_summaries`` afterwards.
        """

    def timestamp(self, value: Any) -> datetime:
        """A timestamp column read outside a declared column (computed expressions)."""
        if isinstance(value, datetime):
            return value
        return datetime.fromisoformat(str(value))

    async def _fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self.transaction() as tx:
            return await tx.fetchrow(sql, *args)

    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self.transaction() as tx:
            return await tx.fetch(sql, *args)

    async def _insert(self, tx: Tx, table: str, values: Mapping[str, Any]) -> None:
        names = list(values)
        await tx.execute(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders(len(names))})",
            *(values[n] for n in names),
        )

    async def _insert_events(self, tx: Tx, events: Sequence[EventDraft]) -> None:
        """Write ``events`` to the outbox inside ``tx``, one pending delivery per subscriber."""
        for event in events:
            values = {c: getattr(event, c) for c in EVENT_COLUMNS}
            values["data"] = self.encode_json(event.data)
            values["created_at"] = as_utc(event.created_at)
            await self._insert(tx, "events", values)
            await tx.execute(
                "INSERT INTO webhook_deliveries (id, event_id, subscription_id, organization_id,"
                " state, attempts, next_attempt_at, updated_at)"
                " SELECT $1 || '/' || s.id, $1, s.id, s.organization_id, 'pending', 0, $2, $2"
                " FROM webhook_subscriptions s"
                " WHERE s.organization_id = $3 AND s.status = 'active'"
                " AND s.event_types LIKE $4"
                " AND (s.agent_identity_id = $5 OR s.phone_number_id = $6)",
                event.id,
                values["created_at"],
                event.organization_id,
                f"%,{event.event_type},%",
                event.agent_identity_id,
                event.phone_number_id,
            )
