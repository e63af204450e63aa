"""WebhookStore in SQL: the event outbox, subscriptions, leased deliveries and attempts.

Events are written by every store that takes ``events`` (``SqlStoreBase._insert_events``
fans each out to a pending delivery per matching subscription); this store lists
them and runs the delivery bookkeeping the outbox worker needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from trunkline.storage.models import (
    DeliveryState,
    DueDelivery,
    EventDraft,
    WebhookAttempt,
    WebhookSubscription,
    utcnow,
)
from trunkline.storage.sql.base import (
    EVENT_COLUMNS,
    Row,
    SqlStoreBase,
    as_utc,
    columns_of,
    model_from_row,
    sanitise_limit,
    select_list,
    set_clause,
)
from trunkline.storage.stores import WebhookStore

SUBSCRIPTION_COLUMNS = columns_of(WebhookSubscription)
ATTEMPT_COLUMNS = columns_of(WebhookAttempt)
SUBSCRIPTION_MUTABLE = frozenset(
    {"url", "event_types", "status", "auth_token_encrypted", "disabled_reason"}
)


def event_types_value(event_types: Sequence[str]) -> str:
    """Stored as ``,a,b,`` so one LIKE matches a type on both backends."""
    return "," + ",".join(event_types) + ","


def subscription_from_row(row: Row) -> WebhookSubscription:
    values = {c: row[c] for c in SUBSCRIPTION_COLUMNS}
    values["event_types"] = [t for t in str(values["event_types"]).split(",") if t]
    return WebhookSubscription(**values)


class SqlWebhookStore(SqlStoreBase, WebhookStore):
    """Outbox events and webhook delivery over the shared SQL base."""

    async def add_events(self, events: Sequence[EventDraft]) -> None:
        async with self.transaction() as tx:
            await self._insert_events(tx, events)

    async def list_events(self, organization_id: str, *, limit: int = 50) -> list[EventDraft]:
        limit, _ = sanitise_limit(limit)
        rows = await self._fetch(
            f"SELECT {select_list(EVENT_COLUMNS)} FROM events WHERE organization_id = $1"
            " ORDER BY created_at DESC, id LIMIT $2",
            organization_id,
            limit,
        )
        return [model_from_row(EventDraft, EVENT_COLUMNS, r) for r in rows]

    async def create_subscription(self, subscription: WebhookSubscription) -> WebhookSubscription:
        values = dataclasses.asdict(subscription)
        values["event_types"] = event_types_value(subscription.event_types)
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
            values["event_types"] = event_types_value(values["event_types"])
        names = list(values)
        row = await self._fetchrow(
            f"UPDATE webhook_subscriptions SET {set_clause(names, 2)}"
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
        self, now: datetime, limit: int, lease_seconds: float, *, lessee: str = ""
    ) -> list[DueDelivery]:
        now = as_utc(now)
        lease_end = now + timedelta(seconds=lease_seconds)
        async with self.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE webhook_deliveries SET leased_until = $2, leased_by = $4, updated_at = $1"
                " WHERE id IN (SELECT id FROM webhook_deliveries"
                "  WHERE state = 'pending' AND next_attempt_at <= $1"
                "  AND (leased_until IS NULL OR leased_until <= $1)"
                # PostgreSQL: rows another claim holds are skipped, and a row another claim
                # leased after this statement's snapshot is re-read when locked and no
                # longer matches. SQLite: BEGIN IMMEDIATE runs one claim at a time.
                f"  ORDER BY next_attempt_at LIMIT $3{self.skip_locked})"
                " RETURNING id, event_id, subscription_id, attempts, next_attempt_at",
                now,
                lease_end,
                limit,
                lessee,
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
                        event=model_from_row(EventDraft, EVENT_COLUMNS, event),
                        subscription=subscription_from_row(subscription),
                        leased_until=lease_end,
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
        lessee: str = "",
    ) -> bool:
        now = utcnow()
        async with self.transaction() as tx:
            await self._insert(tx, "webhook_attempts", dataclasses.asdict(attempt))
            ours = await tx.fetchrow(
                "UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1,"
                " next_attempt_at = COALESCE($3, next_attempt_at), leased_until = NULL,"
                " leased_by = NULL, updated_at = $4"
                " WHERE id = $1 AND state = 'pending' AND leased_by = $5 RETURNING id",
                delivery_id,
                state,
                next_attempt_at,
                now,
                lessee,
            )
            if ours is None:
                return False  # the lease expired and another worker took the delivery over
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
        return True

    async def release_leases(self, lessee: str) -> int:
        rows = await self._fetch(
            "UPDATE webhook_deliveries SET leased_until = NULL, leased_by = NULL, updated_at = $2"
            " WHERE leased_by = $1 AND state = 'pending' RETURNING id",
            lessee,
            utcnow(),
        )
        return len(rows)

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
        limit, offset = sanitise_limit(limit, offset)
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
        return [
            model_from_row(WebhookAttempt, ATTEMPT_COLUMNS, r)
            for r in await self._fetch(sql, *args)
        ]

    async def pending_deliveries(self) -> int:
        row = await self._fetchrow(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE state = 'pending'"
        )
        return 0 if row is None else int(row["n"])
