"""IdentityStore in SQL: organisations, agent identities, signing keys and API tokens."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from trunkline.storage.errors import DuplicateHandle, TokenCapReached
from trunkline.storage.models import AgentIdentity, ApiToken, Organization, new_id, utcnow
from trunkline.storage.sql.base import (
    SqlStoreBase,
    as_utc,
    columns_of,
    model_from_row,
    sanitise_limit,
    select_list,
)
from trunkline.storage.stores import IdentityStore

ORG_COLUMNS = columns_of(Organization)
IDENTITY_COLUMNS = columns_of(AgentIdentity)
TOKEN_COLUMNS = columns_of(ApiToken)


class SqlIdentityStore(SqlStoreBase, IdentityStore):
    """Organisations, identities and tokens over the shared SQL base."""

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
        return None if row is None else model_from_row(Organization, ORG_COLUMNS, row)

    async def list_organizations(self, *, limit: int = 500, offset: int = 0) -> list[Organization]:
        limit, offset = sanitise_limit(limit, offset)
        rows = await self._fetch(
            f"SELECT {select_list(ORG_COLUMNS)} FROM organizations"
            " ORDER BY created_at, id LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
        return [model_from_row(Organization, ORG_COLUMNS, r) for r in rows]

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
        return None if row is None else model_from_row(AgentIdentity, IDENTITY_COLUMNS, row)

    async def get_identity_by_handle(
        self, organization_id: str, agent_handle: str
    ) -> AgentIdentity | None:
        row = await self._fetchrow(
            f"SELECT {select_list(IDENTITY_COLUMNS)} FROM agent_identities"
            " WHERE organization_id = $1 AND agent_handle = $2",
            organization_id,
            agent_handle,
        )
        return None if row is None else model_from_row(AgentIdentity, IDENTITY_COLUMNS, row)

    async def list_identities(self, organization_id: str) -> list[AgentIdentity]:
        rows = await self._fetch(
            f"SELECT {select_list(IDENTITY_COLUMNS)} FROM agent_identities"
            " WHERE organization_id = $1 ORDER BY created_at, id",
            organization_id,
        )
        return [model_from_row(AgentIdentity, IDENTITY_COLUMNS, r) for r in rows]

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
        return None if row is None else model_from_row(ApiToken, TOKEN_COLUMNS, row)

    async def get_token(self, token_id: str) -> ApiToken | None:
        row = await self._fetchrow(
            f"SELECT {select_list(TOKEN_COLUMNS)} FROM api_tokens WHERE id = $1", token_id
        )
        return None if row is None else model_from_row(ApiToken, TOKEN_COLUMNS, row)

    async def find_tokens_by_prefix(self, prefix: str) -> list[ApiToken]:
        rows = await self._fetch(
            f"SELECT {select_list(TOKEN_COLUMNS)} FROM api_tokens WHERE prefix = $1"
            " ORDER BY created_at, id LIMIT 10",
            prefix,
        )
        return [model_from_row(ApiToken, TOKEN_COLUMNS, r) for r in rows]

    async def list_tokens(
        self, organization_id: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[ApiToken]:
        limit, offset = sanitise_limit(limit, offset)
        rows = await self._fetch(
            f"SELECT {select_list(TOKEN_COLUMNS)} FROM api_tokens"
            " WHERE (CAST($1 AS TEXT) IS NULL OR organization_id = $1)"
            " ORDER BY created_at, id LIMIT $2 OFFSET $3",
            organization_id,
            limit,
            offset,
        )
        return [model_from_row(ApiToken, TOKEN_COLUMNS, r) for r in rows]

    async def revoke_token(self, token_id: str, now: datetime) -> ApiToken | None:
        row = await self._fetchrow(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1"
            f" RETURNING {select_list(TOKEN_COLUMNS)}",
            token_id,
            as_utc(now),
        )
        return None if row is None else model_from_row(ApiToken, TOKEN_COLUMNS, row)
