"""CallStore in SQL: call records (conditional status changes) and transcript segments."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from trunkline.storage.errors import CallLimitReached, StorageError
from trunkline.storage.models import (
    CALL_LIVE_STATUSES,
    Call,
    CallStatus,
    EventDraft,
    TranscriptParty,
    TranscriptSegment,
    new_id,
    utcnow,
)
from trunkline.storage.sql.base import (
    Row,
    SqlStoreBase,
    Tx,
    columns_of,
    model_from_row,
    placeholders,
    sanitise_limit,
    select_list,
    set_clause,
)
from trunkline.storage.stores import CallStore

CALL_COLUMNS = columns_of(Call)
SEGMENT_COLUMNS = columns_of(TranscriptSegment)
# Fields a caller may change through update_call.
# Written out (the statuses are constants) so the partial indexes of live calls apply.
LIVE_CLAUSE = "status IN (" + ", ".join(f"'{s}'" for s in CALL_LIVE_STATUSES) + ")"
CALL_MUTABLE = frozenset(CALL_COLUMNS) - {"id", "organization_id", "created_at", "updated_at"}


class SqlCallStore(SqlStoreBase, CallStore):
    """Calls and transcripts over the shared SQL base; the backend supplies transcript search."""

    async def create_call(
        self, call: Call, events: Sequence[EventDraft] = (), *, max_live_per_org: int = 0
    ) -> Call:
        async with self.transaction() as tx:
            if max_live_per_org > 0:
                await self._check_live_calls(tx, call.organization_id, max_live_per_org)
            await self._insert(tx, "calls", dataclasses.asdict(call))
            await self._insert_events(tx, events)
        return call

    async def _check_live_calls(self, tx: Tx, organization_id: str, limit: int) -> None:
        """Raise CallLimitReached when the organisation has ``limit`` live calls.

        The organisation's row lock (PostgreSQL; SQLite's write lock serialises
        anyway) makes count-then-insert atomic across connections and machines.
        """
        await tx.execute(
            f"SELECT id FROM organizations WHERE id = $1{self.row_lock}", organization_id
        )
        row = await tx.fetchrow(
            f"SELECT COUNT(*) AS n FROM calls WHERE organization_id = $1 AND {LIVE_CLAUSE}",
            organization_id,
        )
        if row is not None and int(row["n"]) >= limit:
            raise CallLimitReached(f"the organisation already has {limit} live calls")

    async def get_call(self, call_id: str) -> Call | None:
        row = await self._fetchrow(
            f"SELECT {select_list(CALL_COLUMNS)} FROM calls WHERE id = $1", call_id
        )
        return None if row is None else model_from_row(Call, CALL_COLUMNS, row)

    async def list_calls(
        self,
        organization_id: str,
        *,
        phone_number_id: str | None = None,
        agent_identity_id: str | None = None,
        live: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Call]:
        limit, offset = sanitise_limit(limit, offset)
        sql = f"SELECT {select_list(CALL_COLUMNS, 'c')} FROM calls c"
        args: list[Any] = [organization_id]
        if agent_identity_id is not None:
            sql += " JOIN phone_numbers n ON n.id = c.phone_number_id"
        sql += " WHERE c.organization_id = $1"
        if phone_number_id is not None:
            args.append(phone_number_id)
            sql += f" AND c.phone_number_id = ${len(args)}"
        if agent_identity_id is not None:
            args.append(agent_identity_id)
            sql += f" AND n.agent_identity_id = ${len(args)}"
        if live:
            sql += f" AND c.status IN ({placeholders(len(CALL_LIVE_STATUSES), len(args) + 1)})"
            args += CALL_LIVE_STATUSES
        args += [limit, offset]
        sql += f" ORDER BY c.created_at DESC, c.id LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        return [model_from_row(Call, CALL_COLUMNS, r) for r in await self._fetch(sql, *args)]

    async def list_live_calls(self, owner: str, *, limit: int = 100) -> list[Call]:
        limit, _ = sanitise_limit(limit, 0)
        live = placeholders(len(CALL_LIVE_STATUSES), 2)
        sql = (
            f"SELECT {select_list(CALL_COLUMNS)} FROM calls"
            f" WHERE owner = $1 AND status IN ({live})"
            f" ORDER BY created_at, id LIMIT ${len(CALL_LIVE_STATUSES) + 2}"
        )
        rows = await self._fetch(sql, owner, *CALL_LIVE_STATUSES, limit)
        return [model_from_row(Call, CALL_COLUMNS, r) for r in rows]

    async def update_call(
        self,
        call_id: str,
        changes: Mapping[str, Any],
        *,
        only_if_status: Sequence[CallStatus] | None = None,
        events: Sequence[EventDraft] = (),
    ) -> Call | None:
        unknown = set(changes) - CALL_MUTABLE
        if unknown:
            raise ValueError(f"not updatable call fields: {sorted(unknown)}")
        values = {**changes, "updated_at": utcnow()}
        names = list(values)
        args: list[Any] = [call_id, *(values[n] for n in names)]
        sql = f"UPDATE calls SET {set_clause(names, 2)} WHERE id = $1"
        if only_if_status is not None:
            if not only_if_status:
                return None
            start = len(args) + 1
            args += list(only_if_status)
            sql += f" AND status IN ({placeholders(len(only_if_status), start)})"
        sql += f" RETURNING {select_list(CALL_COLUMNS)}"
        async with self.transaction() as tx:
            row = await tx.fetchrow(sql, *args)
            if row is None:
                return None
            await self._insert_events(tx, events)
        return model_from_row(Call, CALL_COLUMNS, row)

    async def add_transcript_segment(
        self,
        call_id: str,
        party: TranscriptParty,
        text: str,
        ts_ms: int,
        events: Sequence[EventDraft] = (),
    ) -> TranscriptSegment:
        (segment,) = await self.add_transcript_segments(call_id, [(party, text, ts_ms)], events)
        return segment

    async def add_transcript_segments(
        self,
        call_id: str,
        segments: Sequence[tuple[TranscriptParty, str, int]],
        events: Sequence[EventDraft] = (),
    ) -> list[TranscriptSegment]:
        async with self.transaction() as tx:
            call = await tx.fetchrow(f"SELECT id FROM calls WHERE id = $1{self.row_lock}", call_id)
            if call is None:
                raise StorageError(f"no call {call_id}")
            last = await tx.fetchrow(
                "SELECT MAX(seq) AS seq FROM transcript_segments WHERE call_id = $1", call_id
            )
            first = 0 if last is None or last["seq"] is None else int(last["seq"]) + 1
            now = utcnow()
            stored = [
                TranscriptSegment(new_id(), call_id, first + i, ts_ms, party, text, now)
                for i, (party, text, ts_ms) in enumerate(segments)
            ]
            for segment in stored:
                await self._insert(tx, "transcript_segments", dataclasses.asdict(segment))
            await self._insert_events(tx, events)
        return stored

    async def list_transcripts(self, call_id: str) -> list[TranscriptSegment]:
        rows = await self._fetch(
            f"SELECT {select_list(SEGMENT_COLUMNS)} FROM transcript_segments"
            " WHERE call_id = $1 ORDER BY seq",
            call_id,
        )
        return [model_from_row(TranscriptSegment, SEGMENT_COLUMNS, r) for r in rows]

    @abc.abstractmethod
    async def _search_transcript_rows(
        self, phone_number_id: str, query: str, party: TranscriptParty | None, limit: int
    ) -> list[Row]:
        """Rows with SEGMENT_COLUMNS, best match first."""

    async def search_transcripts(
        self,
        phone_number_id: str,
        query: str,
        *,
        party: TranscriptParty | None = None,
        limit: int = 50,
    ) -> list[TranscriptSegment]:
        limit, _ = sanitise_limit(limit)
        rows = await self._search_transcript_rows(phone_number_id, query, party, limit)
        return [model_from_row(TranscriptSegment, SEGMENT_COLUMNS, r) for r in rows]
