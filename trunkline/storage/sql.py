"""The Repository contract written once in SQL that SQLite and PostgreSQL both accept.

Statements use ``$1``-style placeholders (the SQLite backend rewrites them to
``?1``). Each backend supplies a connection primitive (``Tx``), the row-lock
clause, the unique-violation exception types and its own full-text search.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from trunkline.storage.errors import (
    DuplicateHandle,
    NumberCapReached,
    NumberInUse,
    StorageError,
    TokenCapReached,
)
from trunkline.storage.fairness import DatabaseScheduler
from trunkline.storage.models import (
    CALL_LIVE_STATUSES,
    AgentIdentity,
    ApiToken,
    Call,
    CallStatus,
    Conversation,
    DeliveryState,
    DueDelivery,
    EventDraft,
    InboundRouting,
    IncomingCallConfig,
    MediaItem,
    Organization,
    PhoneNumber,
    Text,
    TranscriptParty,
    TranscriptSegment,
    WebhookAttempt,
    WebhookSubscription,
    new_id,
    utcnow,
)
from trunkline.storage.repository import Repository

Row = Mapping[str, Any]
M = TypeVar("M")


class Tx(Protocol):
    """One connection inside one transaction."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> None: ...


def _columns(model: type[Any], *, skip: Sequence[str] = ()) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(model) if f.name not in skip)


ORG_COLUMNS = _columns(Organization)
IDENTITY_COLUMNS = _columns(AgentIdentity)
TOKEN_COLUMNS = _columns(ApiToken)
NUMBER_COLUMNS = _columns(PhoneNumber)
CONFIG_COLUMNS = _columns(IncomingCallConfig)
CALL_COLUMNS = _columns(Call)
SEGMENT_COLUMNS = _columns(TranscriptSegment)
TEXT_COLUMNS = _columns(Text)
EVENT_COLUMNS = _columns(EventDraft)
SUBSCRIPTION_COLUMNS = _columns(WebhookSubscription)
ATTEMPT_COLUMNS = _columns(WebhookAttempt)
SUBSCRIPTION_MUTABLE = frozenset(
    {"url", "event_types", "status", "auth_token_encrypted", "disabled_reason"}
)

# Fields a caller may change through update_number / update_call.
NUMBER_MUTABLE = frozenset(NUMBER_COLUMNS) - {"id", "organization_id", "created_at", "updated_at"}
CALL_MUTABLE = frozenset(CALL_COLUMNS) - {"id", "organization_id", "created_at", "updated_at"}


BULK_TABLES = frozenset({"texts", "transcript_segments", "calls", "events"})


def check_bulk_table(table: str, columns: Sequence[str]) -> None:
    if table not in BULK_TABLES or not all(c.isidentifier() for c in columns):
        raise ValueError(f"bulk insert into {table!r} is not supported")


def select_list(columns: Sequence[str], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + c for c in columns)


def placeholders(count: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


def as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _routing_value(value: InboundRouting | None) -> dict[str, Any] | None:
    return None if value is None else dataclasses.asdict(value)


def _media_value(value: list[MediaItem] | None) -> list[dict[str, Any]] | None:
    return None if value is None else [dataclasses.asdict(m) for m in value]


def number_from_row(row: Row) -> PhoneNumber:
    values = {c: row[c] for c in NUMBER_COLUMNS}
    routing = values["inbound_routing"]
    values["inbound_routing"] = None if routing is None else InboundRouting(**routing)
    return PhoneNumber(**values)


def text_from_row(row: Row) -> Text:
    values = {c: row[c] for c in TEXT_COLUMNS}
    media = values["media"]
    values["media"] = None if media is None else [MediaItem(**m) for m in media]
    return Text(**values)


def _model(model: type[M], columns: Sequence[str], row: Row) -> M:
    return model(**{c: row[c] for c in columns})


# The incoming text is the conversation's latest: newer, or as new with a higher id.
_NEWER = (
    "(excluded.latest_message_at > conversations.latest_message_at"
    " OR (excluded.latest_message_at = conversations.latest_message_at"
    " AND excluded.latest_text_id > conversations.latest_text_id))"
)


def _sanitise_limit(limit: int, offset: int = 0) -> tuple[int, int]:
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    return limit, offset


class SqlRepository(Repository, abc.ABC):
    """Shared SQL for both backends; subclasses provide connections and search."""

    row_lock = ""  # " FOR UPDATE" where the backend has row locks
    skip_locked = ""  # " FOR UPDATE SKIP LOCKED" where concurrent claimers must not collide
    unique_violation: tuple[type[BaseException], ...] = ()
    scheduler: DatabaseScheduler  # every transaction holds one of its slots

    def queue_wait_seconds(self) -> float:
        return self.scheduler.oldest_wait()

    def limit_queues(self, *, per_tenant: int, sheddable_per_tenant: int) -> None:
        self.scheduler.configure(
            queue_per_tenant=per_tenant, sheddable_per_tenant=sheddable_per_tenant
        )

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

    # -- helpers -------------------------------------------------------------
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

    def _number_values(self, number: PhoneNumber) -> dict[str, Any]:
        values = {c: getattr(number, c) for c in NUMBER_COLUMNS}
        values["inbound_routing"] = self.encode_json(_routing_value(number.inbound_routing))
        return values

    def _text_values(self, text: Text) -> dict[str, Any]:
        values = {c: getattr(text, c) for c in TEXT_COLUMNS}
        values["media"] = self.encode_json(_media_value(text.media))
        return values

    # -- organisations, identities, tokens ----------------------------------
    async def create_organization(self, name: str) -> Organization:
        organization = Organization(id=new_id(), name=name, created_at=utcnow())
        async with self.transaction() as tx:
            await self._insert(tx, "organizations", dataclasses.asdict(organization))
        return organization

    async def get_organization(self, organization_id: str) -> Organization | None:
        row = await self._fetchrow(
            f"SELECT {select_list(ORG_COLUMNS)} FROM organizations WHERE id = $1",
            organization_id,
        )
        return None if row is None else _model(Organization, ORG_COLUMNS, row)

    async def create_identity(
        self, organization_id: str, agent_handle: str, display_name: str | None
    ) -> AgentIdentity:
        now = utcnow()
        identity = AgentIdentity(new_id(), organization_id, agent_handle, display_name, now, now)
        try:
            async with self.transaction() as tx:
                existing = await tx.fetchrow(
                    "SELECT id FROM agent_identities WHERE organization_id = $1"
                    " AND agent_handle = $2",
                    organization_id,
                    agent_handle,
                )
                if existing is not None:
                    raise DuplicateHandle(agent_handle)
                await self._insert(tx, "agent_identities", dataclasses.asdict(identity))
        except self.unique_violation as exc:
            raise DuplicateHandle(agent_handle) from exc
        return identity

    async def get_identity(self, identity_id: str) -> AgentIdentity | None:
        row = await self._fetchrow(
            f"SELECT {select_list(IDENTITY_COLUMNS)} FROM agent_identities WHERE id = $1",
            identity_id,
        )
        return None if row is None else _model(AgentIdentity, IDENTITY_COLUMNS, row)

    async def get_identity_by_handle(
        self, organization_id: str, agent_handle: str
    ) -> AgentIdentity | None:
        row = await self._fetchrow(
            f"SELECT {select_list(IDENTITY_COLUMNS)} FROM agent_identities"
            " WHERE organization_id = $1 AND agent_handle = $2",
            organization_id,
            agent_handle,
        )
        return None if row is None else _model(AgentIdentity, IDENTITY_COLUMNS, row)

    async def list_identities(self, organization_id: str) -> list[AgentIdentity]:
        rows = await self._fetch(
            f"SELECT {select_list(IDENTITY_COLUMNS)} FROM agent_identities"
            " WHERE organization_id = $1 ORDER BY created_at, id",
            organization_id,
        )
        return [_model(AgentIdentity, IDENTITY_COLUMNS, r) for r in rows]

    async def create_token(
        self,
        organization_id: str,
        agent_identity_id: str | None,
        token_hash: str,
        *,
        prefix: str | None = None,
        expires_at: datetime | None = None,
        max_usable: int | None = None,
    ) -> ApiToken:
        token = ApiToken(
            new_id(),
            organization_id,
            agent_identity_id,
            utcnow(),
            prefix=prefix,
            expires_at=None if expires_at is None else as_utc(expires_at),
        )
        async with self.transaction() as tx:
            if max_usable is not None:
                # Lock the organisation row so concurrent creations serialise on it.
                await tx.fetchrow(
                    f"SELECT id FROM organizations WHERE id = $1{self.row_lock}",
                    organization_id,
                )
                count = await tx.fetchrow(
                    "SELECT COUNT(*) AS n FROM api_tokens WHERE organization_id = $1"
                    " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
                    organization_id,
                    token.created_at,
                )
                if count is not None and int(count["n"]) >= max_usable:
                    raise TokenCapReached(organization_id)
            await self._insert(
                tx, "api_tokens", {**dataclasses.asdict(token), "token_hash": token_hash}
            )
        return token

    async def find_token(self, token_hash: str) -> ApiToken | None:
        row = await self._fetchrow(
            f"SELECT {select_list(TOKEN_COLUMNS)} FROM api_tokens WHERE token_hash = $1",
            token_hash,
        )
        return None if row is None else _model(ApiToken, TOKEN_COLUMNS, row)

    async def get_token(self, token_id: str) -> ApiToken | None:
        row = await self._fetchrow(
            f"SELECT {select_list(TOKEN_COLUMNS)} FROM api_tokens WHERE id = $1", token_id
        )
        return None if row is None else _model(ApiToken, TOKEN_COLUMNS, row)

    async def find_tokens_by_prefix(self, prefix: str) -> list[ApiToken]:
        rows = await self._fetch(
            f"SELECT {select_list(TOKEN_COLUMNS)} FROM api_tokens WHERE prefix = $1"
            " ORDER BY created_at, id LIMIT 10",
            prefix,
        )
        return [_model(ApiToken, TOKEN_COLUMNS, r) for r in rows]

    async def list_tokens(
        self, organization_id: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[ApiToken]:
        limit, offset = _sanitise_limit(limit, offset)
        rows = await self._fetch(
            f"SELECT {select_list(TOKEN_COLUMNS)} FROM api_tokens"
            " WHERE (CAST($1 AS TEXT) IS NULL OR organization_id = $1)"
            " ORDER BY created_at, id LIMIT $2 OFFSET $3",
            organization_id,
            limit,
            offset,
        )
        return [_model(ApiToken, TOKEN_COLUMNS, r) for r in rows]

    async def revoke_token(self, token_id: str, now: datetime) -> ApiToken | None:
        row = await self._fetchrow(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1"
            f" RETURNING {select_list(TOKEN_COLUMNS)}",
            token_id,
            as_utc(now),
        )
        return None if row is None else _model(ApiToken, TOKEN_COLUMNS, row)

    async def set_identity_signing_key(self, identity_id: str, encrypted_key: str | None) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "UPDATE agent_identities SET signing_key_encrypted = $2, updated_at = $3"
                " WHERE id = $1",
                identity_id,
                encrypted_key,
                utcnow(),
            )

    async def get_identity_signing_key(self, identity_id: str) -> str | None:
        row = await self._fetchrow(
            "SELECT signing_key_encrypted FROM agent_identities WHERE id = $1", identity_id
        )
        return None if row is None else row["signing_key_encrypted"]

    # -- phone numbers -----------------------------------------------------
    async def create_number(self, number: PhoneNumber, max_active: int) -> PhoneNumber:
        try:
            async with self.transaction() as tx:
                # Lock the organisation row so concurrent provisioning serialises on it.
                await tx.fetchrow(
                    f"SELECT id FROM organizations WHERE id = $1{self.row_lock}",
                    number.organization_id,
                )
                count = await tx.fetchrow(
                    "SELECT COUNT(*) AS n FROM phone_numbers"
                    " WHERE organization_id = $1 AND status <> 'released'",
                    number.organization_id,
                )
                if count is not None and int(count["n"]) >= max_active:
                    raise NumberCapReached(number.organization_id)
                taken = await tx.fetchrow(
                    "SELECT id FROM phone_numbers WHERE number = $1 AND status <> 'released'",
                    number.number,
                )
                if taken is not None:
                    raise NumberInUse(number.number)
                await self._insert(tx, "phone_numbers", self._number_values(number))
        except self.unique_violation as exc:
            raise NumberInUse(number.number) from exc
        return number

    async def get_number(self, phone_number_id: str) -> PhoneNumber | None:
        row = await self._fetchrow(
            f"SELECT {select_list(NUMBER_COLUMNS)} FROM phone_numbers WHERE id = $1",
            phone_number_id,
        )
        return None if row is None else number_from_row(row)

    async def find_active_number(self, e164: str) -> PhoneNumber | None:
        row = await self._fetchrow(
            f"SELECT {select_list(NUMBER_COLUMNS)} FROM phone_numbers"
            " WHERE number = $1 AND status IN ('active', 'paused')",
            e164,
        )
        return None if row is None else number_from_row(row)

    async def list_numbers(
        self, organization_id: str, agent_identity_id: str | None = None
    ) -> list[PhoneNumber]:
        sql = f"SELECT {select_list(NUMBER_COLUMNS)} FROM phone_numbers WHERE organization_id = $1"
        args: list[Any] = [organization_id]
        if agent_identity_id is not None:
            sql += " AND agent_identity_id = $2"
            args.append(agent_identity_id)
        rows = await self._fetch(sql + " ORDER BY created_at, id", *args)
        return [number_from_row(r) for r in rows]

    async def update_number(
        self, phone_number_id: str, changes: Mapping[str, Any]
    ) -> PhoneNumber | None:
        unknown = set(changes) - NUMBER_MUTABLE
        if unknown:
            raise ValueError(f"not updatable number fields: {sorted(unknown)}")
        values = dict(changes)
        if "inbound_routing" in values:
            values["inbound_routing"] = self.encode_json(_routing_value(values["inbound_routing"]))
        values["updated_at"] = utcnow()
        names = list(values)
        assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
        try:
            async with self.transaction() as tx:
                row = await tx.fetchrow(
                    f"UPDATE phone_numbers SET {assignments} WHERE id = $1"
                    f" RETURNING {select_list(NUMBER_COLUMNS)}",
                    phone_number_id,
                    *(values[n] for n in names),
                )
        except self.unique_violation as exc:
            raise NumberInUse(str(changes.get("number", ""))) from exc
        return None if row is None else number_from_row(row)

    async def release_number(self, phone_number_id: str) -> PhoneNumber | None:
        return await self.update_number(
            phone_number_id, {"status": "released", "agent_identity_id": None}
        )

    async def active_numbers_in_use(self) -> list[str]:
        rows = await self._fetch("SELECT number FROM phone_numbers WHERE status <> 'released'")
        return [str(r["number"]) for r in rows]

    # -- incoming-call configuration ----------------------------------------
    async def upsert_incoming_call_config(self, config: IncomingCallConfig) -> IncomingCallConfig:
        values = dataclasses.asdict(config)
        names = list(values)
        updates = ", ".join(
            f"{n} = excluded.{n}" for n in names if n not in ("agent_identity_id", "created_at")
        )
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                f"INSERT INTO incoming_call_configs ({', '.join(names)})"
                f" VALUES ({placeholders(len(names))})"
                f" ON CONFLICT (agent_identity_id) DO UPDATE SET {updates}"
                f" RETURNING {select_list(CONFIG_COLUMNS)}",
                *(values[n] for n in names),
            )
        assert row is not None
        return _model(IncomingCallConfig, CONFIG_COLUMNS, row)

    async def get_incoming_call_config(self, agent_identity_id: str) -> IncomingCallConfig | None:
        row = await self._fetchrow(
            f"SELECT {select_list(CONFIG_COLUMNS)} FROM incoming_call_configs"
            " WHERE agent_identity_id = $1",
            agent_identity_id,
        )
        return None if row is None else _model(IncomingCallConfig, CONFIG_COLUMNS, row)

    # -- calls ---------------------------------------------------------------
    async def create_call(self, call: Call, events: Sequence[EventDraft] = ()) -> Call:
        async with self.transaction() as tx:
            await self._insert(tx, "calls", dataclasses.asdict(call))
            await self._insert_events(tx, events)
        return call

    async def get_call(self, call_id: str) -> Call | None:
        row = await self._fetchrow(
            f"SELECT {select_list(CALL_COLUMNS)} FROM calls WHERE id = $1", call_id
        )
        return None if row is None else _model(Call, CALL_COLUMNS, row)

    async def list_calls(
        self,
        organization_id: str,
        *,
        phone_number_id: str | None = None,
        agent_identity_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Call]:
        limit, offset = _sanitise_limit(limit, offset)
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
        args += [limit, offset]
        sql += f" ORDER BY c.created_at DESC, c.id LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        return [_model(Call, CALL_COLUMNS, r) for r in await self._fetch(sql, *args)]

    async def list_live_calls(self, owner: str, *, limit: int = 100) -> list[Call]:
        limit, _ = _sanitise_limit(limit, 0)
        live = placeholders(len(CALL_LIVE_STATUSES), 2)
        sql = (
            f"SELECT {select_list(CALL_COLUMNS)} FROM calls"
            f" WHERE owner = $1 AND status IN ({live})"
            f" ORDER BY created_at, id LIMIT ${len(CALL_LIVE_STATUSES) + 2}"
        )
        rows = await self._fetch(sql, owner, *CALL_LIVE_STATUSES, limit)
        return [_model(Call, CALL_COLUMNS, r) for r in rows]

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
        assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
        sql = f"UPDATE calls SET {assignments} WHERE id = $1"
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
        return _model(Call, CALL_COLUMNS, row)

    # -- transcripts -----------------------------------------------------------
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
        return [_model(TranscriptSegment, SEGMENT_COLUMNS, r) for r in rows]

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
        limit, _ = _sanitise_limit(limit)
        rows = await self._search_transcript_rows(phone_number_id, query, party, limit)
        return [_model(TranscriptSegment, SEGMENT_COLUMNS, r) for r in rows]

    # -- texts -----------------------------------------------------------------
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
        limit, offset = _sanitise_limit(limit, offset)
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
        assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=3))
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
                f"UPDATE texts SET {assignments} WHERE phone_number_id = $1 AND id = $2"
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
        limit, _ = _sanitise_limit(limit)
        return [
            text_from_row(r) for r in await self._search_text_rows(phone_number_id, query, limit)
        ]

    async def list_conversations(
        self, phone_number_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Conversation]:
        limit, offset = _sanitise_limit(limit, offset)
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

    def timestamp(self, value: Any) -> datetime:
        """A timestamp column read outside a declared column (computed expressions)."""
        if isinstance(value, datetime):
            return value
        return datetime.fromisoformat(str(value))

    async def list_conversation(
        self, phone_number_id: str, remote_phone_number: str, *, limit: int = 50, offset: int = 0
    ) -> list[Text]:
        limit, offset = _sanitise_limit(limit, offset)
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

    # -- outbox --------------------------------------------------------------
    async def add_events(self, events: Sequence[EventDraft]) -> None:
        async with self.transaction() as tx:
            await self._insert_events(tx, events)

    async def list_events(self, organization_id: str, *, limit: int = 50) -> list[EventDraft]:
        limit, _ = _sanitise_limit(limit)
        rows = await self._fetch(
            f"SELECT {select_list(EVENT_COLUMNS)} FROM events WHERE organization_id = $1"
            " ORDER BY created_at DESC, id LIMIT $2",
            organization_id,
            limit,
        )
        return [_model(EventDraft, EVENT_COLUMNS, r) for r in rows]

    # -- webhook subscriptions and delivery ------------------------------------
    async def create_subscription(self, subscription: WebhookSubscription) -> WebhookSubscription:
        values = dataclasses.asdict(subscription)
        values["event_types"] = _event_types_value(subscription.event_types)
        async with self.transaction() as tx:
            await self._insert(tx, "webhook_subscriptions", values)
        return subscription

    async def get_subscription(self, subscription_id: str) -> WebhookSubscription | None:
        row = await self._fetchrow(
            f"SELECT {select_list(SUBSCRIPTION_COLUMNS)} FROM webhook_subscriptions"
            " WHERE id = $1 AND status <> 'deleted'",
            subscription_id,
        )
        return None if row is None else subscription_from_row(row)

    async def list_subscriptions(
        self,
        organization_id: str,
        *,
        agent_identity_id: str | None = None,
        phone_number_id: str | None = None,
        url: str | None = None,
        event_type: str | None = None,
    ) -> list[WebhookSubscription]:
        sql = (
            f"SELECT {select_list(SUBSCRIPTION_COLUMNS)} FROM webhook_subscriptions"
            " WHERE organization_id = $1 AND status <> 'deleted'"
        )
        args: list[Any] = [organization_id]
        for column, value in (
            ("agent_identity_id", agent_identity_id),
            ("phone_number_id", phone_number_id),
            ("url", url),
        ):
            if value is not None:
                args.append(value)
                sql += f" AND {column} = ${len(args)}"
        if event_type is not None:
            args.append(f"%,{event_type},%")
            sql += f" AND event_types LIKE ${len(args)}"
        rows = await self._fetch(sql + " ORDER BY created_at, id", *args)
        return [subscription_from_row(r) for r in rows]

    async def update_subscription(
        self, subscription_id: str, changes: Mapping[str, Any]
    ) -> WebhookSubscription | None:
        unknown = set(changes) - SUBSCRIPTION_MUTABLE
        if unknown:
            raise ValueError(f"not updatable subscription fields: {sorted(unknown)}")
        values = {**changes, "updated_at": utcnow()}
        if "event_types" in values:
            values["event_types"] = _event_types_value(values["event_types"])
        names = list(values)
        assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
        row = await self._fetchrow(
            f"UPDATE webhook_subscriptions SET {assignments}"
            " WHERE id = $1 AND status <> 'deleted'"
            f" RETURNING {select_list(SUBSCRIPTION_COLUMNS)}",
            subscription_id,
            *(values[n] for n in names),
        )
        return None if row is None else subscription_from_row(row)

    async def delete_subscription(self, subscription_id: str) -> bool:
        now = utcnow()
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                "UPDATE webhook_subscriptions SET status = 'deleted', updated_at = $2"
                " WHERE id = $1 AND status <> 'deleted' RETURNING id",
                subscription_id,
                now,
            )
            if row is None:
                return False
            await tx.execute(
                "UPDATE webhook_deliveries SET state = 'failed', updated_at = $2"
                " WHERE subscription_id = $1 AND state = 'pending'",
                subscription_id,
                now,
            )
        return True

    async def claim_due_deliveries(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[DueDelivery]:
        now = as_utc(now)
        lease_end = now + timedelta(seconds=lease_seconds)
        async with self.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE webhook_deliveries SET leased_until = $2, updated_at = $1"
                " WHERE id IN (SELECT id FROM webhook_deliveries"
                "  WHERE state = 'pending' AND next_attempt_at <= $1"
                "  AND (leased_until IS NULL OR leased_until <= $1)"
                f"  ORDER BY next_attempt_at LIMIT $3{self.skip_locked})"
                " RETURNING id, event_id, subscription_id, attempts, next_attempt_at",
                now,
                lease_end,
                limit,
            )
            claimed: list[DueDelivery] = []
            for row in sorted(rows, key=lambda r: (r["next_attempt_at"], r["id"])):
                event = await tx.fetchrow(
                    f"SELECT {select_list(EVENT_COLUMNS)} FROM events WHERE id = $1",
                    row["event_id"],
                )
                subscription = await tx.fetchrow(
                    f"SELECT {select_list(SUBSCRIPTION_COLUMNS)} FROM webhook_subscriptions"
                    " WHERE id = $1",
                    row["subscription_id"],
                )
                if event is None or subscription is None:
                    continue
                claimed.append(
                    DueDelivery(
                        id=row["id"],
                        attempts=int(row["attempts"]),
                        event=_model(EventDraft, EVENT_COLUMNS, event),
                        subscription=subscription_from_row(subscription),
                    )
                )
        return claimed

    async def finish_delivery(
        self,
        delivery_id: str,
        attempt: WebhookAttempt,
        *,
        state: DeliveryState,
        next_attempt_at: datetime | None,
        disable_subscription: str | None = None,
    ) -> None:
        now = utcnow()
        async with self.transaction() as tx:
            await self._insert(tx, "webhook_attempts", dataclasses.asdict(attempt))
            await tx.execute(
                "UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1,"
                " next_attempt_at = COALESCE($3, next_attempt_at), leased_until = NULL,"
                " updated_at = $4 WHERE id = $1",
                delivery_id,
                state,
                next_attempt_at,
                now,
            )
            if disable_subscription is not None and attempt.subscription_id is not None:
                await tx.execute(
                    "UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = $2,"
                    " updated_at = $3 WHERE id = $1 AND status = 'active'",
                    attempt.subscription_id,
                    disable_subscription,
                    now,
                )
                await tx.execute(
                    "UPDATE webhook_deliveries SET state = 'failed', updated_at = $2"
                    " WHERE subscription_id = $1 AND state = 'pending'",
                    attempt.subscription_id,
                    now,
                )

    async def list_attempts(
        self,
        organization_id: str,
        *,
        subscription_id: str | None = None,
        phone_number_id: str | None = None,
        event_type: str | None = None,
        success: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[WebhookAttempt]:
        limit, offset = _sanitise_limit(limit, offset)
        sql = (
            f"SELECT {select_list(ATTEMPT_COLUMNS)} FROM webhook_attempts"
            " WHERE organization_id = $1"
        )
        args: list[Any] = [organization_id]
        for column, value in (
            ("subscription_id", subscription_id),
            ("phone_number_id", phone_number_id),
            ("event_type", event_type),
        ):
            if value is not None:
                args.append(value)
                sql += f" AND {column} = ${len(args)}"
        if success is True:
            sql += " AND response_status BETWEEN 200 AND 299"
        elif success is False:
            sql += " AND (response_status IS NULL OR response_status NOT BETWEEN 200 AND 299)"
        args += [limit, offset]
        sql += f" ORDER BY created_at DESC, id LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        return [_model(WebhookAttempt, ATTEMPT_COLUMNS, r) for r in await self._fetch(sql, *args)]

    async def pending_deliveries(self) -> int:
        row = await self._fetchrow(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE state = 'pending'"
        )
        return 0 if row is None else int(row["n"])


def _event_types_value(event_types: Sequence[str]) -> str:
    """Stored as ``,a,b,`` so one LIKE matches a type on both backends."""
    return "," + ",".join(event_types) + ","


def subscription_from_row(row: Row) -> WebhookSubscription:
    values = {c: row[c] for c in SUBSCRIPTION_COLUMNS}
    values["event_types"] = [t for t in str(values["event_types"]).split(",") if t]
    return WebhookSubscription(**values)
