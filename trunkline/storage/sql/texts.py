"""TextStore in SQL: texts and the conversation summaries kept in step with them.

``conversations`` holds one row per (number, remote party): the latest text,
the unread and total counts. Every change to a text adjusts it in the same
transaction; ``rebuild_summaries`` recomputes it after a bulk load.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from trunkline.storage.models import Conversation, EventDraft, MediaItem, Text, utcnow
from trunkline.storage.sql.base import (
    Row,
    SqlStoreBase,
    Tx,
    as_utc,
    columns_of,
    sanitise_limit,
    select_list,
    set_clause,
)
from trunkline.storage.stores import TextStore

TEXT_COLUMNS = columns_of(Text)

# The incoming text is the conversation's latest: newer, or as new with a higher id.
_NEWER = (
    "(excluded.latest_message_at > conversations.latest_message_at"
    " OR (excluded.latest_message_at = conversations.latest_message_at"
    " AND excluded.latest_text_id > conversations.latest_text_id))"
)


def media_value(value: list[MediaItem] | None) -> list[dict[str, Any]] | None:
    """The attachments as the JSON value stored in ``texts.media``."""
    return None if value is None else [dataclasses.asdict(m) for m in value]


def text_from_row(row: Row) -> Text:
    values = {c: row[c] for c in TEXT_COLUMNS}
    media = values["media"]
    values["media"] = None if media is None else [MediaItem(**m) for m in media]
    return Text(**values)


class SqlTextStore(SqlStoreBase, TextStore):
    """Texts and conversations over the shared SQL base; the backend supplies text search."""

    def _text_values(self, text: Text) -> dict[str, Any]:
        values = {c: getattr(text, c) for c in TEXT_COLUMNS}
        values["media"] = self.encode_json(media_value(text.media))
        return values

    async def rebuild_summaries(self) -> None:
        """Recompute derived tables (conversation summaries) from the texts."""
        async with self.transaction() as tx:
            await tx.execute("DELETE FROM conversations")
            await tx.execute(
                "INSERT INTO conversations SELECT phone_number_id, remote_phone_number, id,"
                " created_at, unread, total FROM ("
                " SELECT phone_number_id, remote_phone_number, id, created_at,"
                "  ROW_NUMBER() OVER (PARTITION BY phone_number_id, remote_phone_number"
                "   ORDER BY created_at DESC, id DESC) AS position,"
                "  SUM(CASE WHEN is_read THEN 0 ELSE 1 END)"
                "   OVER (PARTITION BY phone_number_id, remote_phone_number) AS unread,"
                "  COUNT(*) OVER (PARTITION BY phone_number_id, remote_phone_number) AS total"
                " FROM texts WHERE status <> 'deleted') ranked WHERE position = 1"
            )
            await tx.execute("ANALYZE")

    async def insert_text(self, text: Text, events: Sequence[EventDraft] = ()) -> tuple[Text, bool]:
        try:
            async with self.transaction() as tx:
                existing = await self._text_by_carrier_id(tx, text)
                if existing is not None:
                    return existing, False
                await self._insert(tx, "texts", self._text_values(text))
                if text.status != "deleted":
                    await self._count_into_conversation(tx, text)
                await self._insert_events(tx, events)
        except self.unique_violation:
            # A concurrent insert of the same carrier message won the race.
            async with self.transaction() as tx:
                existing = await self._text_by_carrier_id(tx, text)
            if existing is None:
                raise
            return existing, False
        return text, True

    async def _text_by_carrier_id(self, tx: Tx, text: Text) -> Text | None:
        if text.carrier_message_id is None:
            return None
        row = await tx.fetchrow(
            f"SELECT {select_list(TEXT_COLUMNS)} FROM texts"
            " WHERE phone_number_id = $1 AND carrier_message_id = $2",
            text.phone_number_id,
            text.carrier_message_id,
        )
        return None if row is None else text_from_row(row)

    async def get_text(self, phone_number_id: str, text_id: str) -> Text | None:
        row = await self._fetchrow(
            f"SELECT {select_list(TEXT_COLUMNS)} FROM texts"
            " WHERE phone_number_id = $1 AND id = $2 AND status <> 'deleted'",
            phone_number_id,
            text_id,
        )
        return None if row is None else text_from_row(row)

    async def list_texts(
        self,
        phone_number_id: str,
        *,
        is_read: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Text]:
        limit, offset = sanitise_limit(limit, offset)
        sql = (
            f"SELECT {select_list(TEXT_COLUMNS)} FROM texts"
            " WHERE phone_number_id = $1 AND status <> 'deleted'"
        )
        args: list[Any] = [phone_number_id]
        if is_read is not None:
            args.append(is_read)
            sql += f" AND is_read = ${len(args)}"
        args += [limit, offset]
        sql += f" ORDER BY created_at DESC, id LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        return [text_from_row(r) for r in await self._fetch(sql, *args)]

    async def update_text(
        self,
        phone_number_id: str,
        text_id: str,
        *,
        is_read: bool | None = None,
        deleted: bool = False,
    ) -> Text | None:
        values: dict[str, Any] = {"updated_at": utcnow()}
        if is_read is not None:
            values["is_read"] = is_read
        if deleted:
            values["status"] = "deleted"
        names = list(values)
        async with self.transaction() as tx:
            before = await tx.fetchrow(
                "SELECT is_read FROM texts"
                f" WHERE phone_number_id = $1 AND id = $2 AND status <> 'deleted'{self.row_lock}",
                phone_number_id,
                text_id,
            )
            if before is None:
                return None
            row = await tx.fetchrow(
                f"UPDATE texts SET {set_clause(names, 3)} WHERE phone_number_id = $1 AND id = $2"
                f" RETURNING {select_list(TEXT_COLUMNS)}",
                phone_number_id,
                text_id,
                *(values[n] for n in names),
            )
            assert row is not None
            text = text_from_row(row)
            was_unread = 0 if before["is_read"] else 1
            if deleted:
                await self._uncount_from_conversation(tx, text, was_unread)
            elif is_read is not None:
                await tx.execute(
                    "UPDATE conversations SET unread_count = unread_count + $3"
                    " WHERE phone_number_id = $1 AND remote_phone_number = $2",
                    phone_number_id,
                    text.remote_phone_number,
                    (0 if is_read else 1) - was_unread,
                )
        return text

    async def _count_into_conversation(self, tx: Tx, text: Text) -> None:
        await tx.execute(
            "INSERT INTO conversations (phone_number_id, remote_phone_number, latest_text_id,"
            " latest_message_at, unread_count, total_count) VALUES ($1, $2, $3, $4, $5, 1)"
            " ON CONFLICT (phone_number_id, remote_phone_number) DO UPDATE SET"
            " total_count = conversations.total_count + 1,"
            " unread_count = conversations.unread_count + excluded.unread_count,"
            f" latest_text_id = CASE WHEN {_NEWER} THEN excluded.latest_text_id"
            "  ELSE conversations.latest_text_id END,"
            f" latest_message_at = CASE WHEN {_NEWER} THEN excluded.latest_message_at"
            "  ELSE conversations.latest_message_at END",
            text.phone_number_id,
            text.remote_phone_number,
            text.id,
            as_utc(text.created_at),
            0 if text.is_read else 1,
        )

    async def _uncount_from_conversation(self, tx: Tx, text: Text, was_unread: int) -> None:
        key = (text.phone_number_id, text.remote_phone_number)
        summary = await tx.fetchrow(
            "UPDATE conversations SET total_count = total_count - 1,"
            " unread_count = unread_count - $3"
            " WHERE phone_number_id = $1 AND remote_phone_number = $2"
            " RETURNING total_count, latest_text_id",
            *key,
            was_unread,
        )
        if summary is None:
            return
        if int(summary["total_count"]) <= 0:
            await tx.execute(
                "DELETE FROM conversations WHERE phone_number_id = $1 AND remote_phone_number = $2",
                *key,
            )
            return
        if summary["latest_text_id"] != text.id:
            return
        latest = await tx.fetchrow(
            "SELECT id, created_at FROM texts WHERE phone_number_id = $1"
            " AND remote_phone_number = $2 AND status <> 'deleted'"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            *key,
        )
        if latest is not None:
            await tx.execute(
                "UPDATE conversations SET latest_text_id = $3, latest_message_at = $4"
                " WHERE phone_number_id = $1 AND remote_phone_number = $2",
                *key,
                latest["id"],
                latest["created_at"],
            )

    async def update_text_delivery(
        self, phone_number_id: str, carrier_message_id: str, delivery_status: str
    ) -> Text | None:
        row = await self._fetchrow(
            "UPDATE texts SET delivery_status = $3, updated_at = $4"
            " WHERE phone_number_id = $1 AND carrier_message_id = $2"
            f" RETURNING {select_list(TEXT_COLUMNS)}",
            phone_number_id,
            carrier_message_id,
            delivery_status,
            utcnow(),
        )
        return None if row is None else text_from_row(row)

    @abc.abstractmethod
    async def _search_text_rows(self, phone_number_id: str, query: str, limit: int) -> list[Row]:
        """Rows with TEXT_COLUMNS, best match first, deleted excluded."""

    async def search_texts(
        self, phone_number_id: str, query: str, *, limit: int = 50
    ) -> list[Text]:
        limit, _ = sanitise_limit(limit)
        return [
            text_from_row(r) for r in await self._search_text_rows(phone_number_id, query, limit)
        ]

    async def list_conversations(
        self, phone_number_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Conversation]:
        limit, offset = sanitise_limit(limit, offset)
        rows = await self._fetch(
            "SELECT c.remote_phone_number, t.text, t.direction, t.type,"
            " c.latest_message_at, c.unread_count, c.total_count"
            " FROM conversations c JOIN texts t ON t.id = c.latest_text_id"
            " WHERE c.phone_number_id = $1"
            " ORDER BY c.latest_message_at DESC, c.remote_phone_number LIMIT $2 OFFSET $3",
            phone_number_id,
            limit,
            offset,
        )
        return [
            Conversation(
                remote_phone_number=r["remote_phone_number"],
                latest_text=r["text"],
                latest_direction=r["direction"],
                latest_type=r["type"],
                latest_message_at=self.timestamp(r["latest_message_at"]),
                unread_count=int(r["unread_count"]),
                total_count=int(r["total_count"]),
            )
            for r in rows
        ]

    async def list_conversation(
        self, phone_number_id: str, remote_phone_number: str, *, limit: int = 50, offset: int = 0
    ) -> list[Text]:
        limit, offset = sanitise_limit(limit, offset)
        rows = await self._fetch(
            f"SELECT {select_list(TEXT_COLUMNS)} FROM texts"
            " WHERE phone_number_id = $1 AND remote_phone_number = $2 AND status <> 'deleted'"
            " ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
            phone_number_id,
            remote_phone_number,
            limit,
            offset,
        )
        return [text_from_row(r) for r in rows]

    async def mark_conversation_read(
        self, phone_number_id: str, remote_phone_number: str, is_read: bool
    ) -> int:
        async with self.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE texts SET is_read = $3, updated_at = $4"
                " WHERE phone_number_id = $1 AND remote_phone_number = $2"
                " AND status <> 'deleted' AND is_read <> $3 RETURNING id",
                phone_number_id,
                remote_phone_number,
                is_read,
                utcnow(),
            )
            await tx.execute(
                "UPDATE conversations SET unread_count ="
                " CASE WHEN $3 THEN 0 ELSE total_count END"
                " WHERE phone_number_id = $1 AND remote_phone_number = $2",
                phone_number_id,
                remote_phone_number,
                is_read,
            )
        return len(rows)

    async def count_outbound_recipients_since(
        self, phone_number_id: str, since_epoch_seconds: float
    ) -> int:
        row = await self._fetchrow(
            "SELECT COUNT(DISTINCT remote_phone_number) AS n FROM texts"
            " WHERE phone_number_id = $1 AND direction = 'outbound' AND created_at >= $2",
            phone_number_id,
            datetime.fromtimestamp(since_epoch_seconds, UTC),
        )
        return 0 if row is None else int(row["n"])
