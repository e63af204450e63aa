"""NumberStore in SQL: phone numbers (with their routing JSON) and incoming-call configs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from trunkline.storage.errors import NumberCapReached, NumberInUse
from trunkline.storage.models import InboundRouting, IncomingCallConfig, PhoneNumber, utcnow
from trunkline.storage.sql.base import (
    Row,
    SqlStoreBase,
    columns_of,
    model_from_row,
    placeholders,
    select_list,
    set_clause,
)
from trunkline.storage.stores import NumberStore

NUMBER_COLUMNS = columns_of(PhoneNumber)
CONFIG_COLUMNS = columns_of(IncomingCallConfig)
# Fields a caller may change through update_number.
NUMBER_MUTABLE = frozenset(NUMBER_COLUMNS) - {"id", "organization_id", "created_at", "updated_at"}
REGISTRATION_COLUMNS = ("registration_state", "registration_expires_at", "registration_error")


def routing_value(value: InboundRouting | None) -> dict[str, Any] | None:
    """The routing as the JSON value stored in ``phone_numbers.inbound_routing``."""
    return None if value is None else dataclasses.asdict(value)


def number_from_row(row: Row) -> PhoneNumber:
    values = {c: row[c] for c in NUMBER_COLUMNS}
    routing = values["inbound_routing"]
    values["inbound_routing"] = None if routing is None else InboundRouting(**routing)
    return PhoneNumber(**values)


class SqlNumberStore(SqlStoreBase, NumberStore):
    """Phone numbers and incoming-call configs over the shared SQL base."""

    def _number_values(self, number: PhoneNumber) -> dict[str, Any]:
        values = {c: getattr(number, c) for c in NUMBER_COLUMNS}
        values["inbound_routing"] = self.encode_json(routing_value(number.inbound_routing))
        return values

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
            values["inbound_routing"] = self.encode_json(routing_value(values["inbound_routing"]))
        values["updated_at"] = utcnow()
        names = list(values)
        try:
            async with self.transaction() as tx:
                row = await tx.fetchrow(
                    f"UPDATE phone_numbers SET {set_clause(names, 2)} WHERE id = $1"
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

    async def numbers_to_register(self) -> list[PhoneNumber]:
        rows = await self._fetch(
            f"SELECT {select_list(NUMBER_COLUMNS)} FROM phone_numbers"
            " WHERE sip_register AND status IN ('active', 'paused') ORDER BY created_at, id"
        )
        return [number_from_row(r) for r in rows]

    async def set_registration(
        self,
        phone_number_id: str,
        state: str | None,
        expires_at: datetime | None,
        error: str | None,
    ) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                f"UPDATE phone_numbers SET {set_clause(REGISTRATION_COLUMNS, 2)} WHERE id = $1",
                phone_number_id,
                state,
                expires_at,
                error,
            )

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
        return model_from_row(IncomingCallConfig, CONFIG_COLUMNS, row)

    async def get_incoming_call_config(self, agent_identity_id: str) -> IncomingCallConfig | None:
        row = await self._fetchrow(
            f"SELECT {select_list(CONFIG_COLUMNS)} FROM incoming_call_configs"
            " WHERE agent_identity_id = $1",
            agent_identity_id,
        )
        return None if row is None else model_from_row(IncomingCallConfig, CONFIG_COLUMNS, row)
