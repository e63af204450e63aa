"""IdentityStore: organisations, their agent identities, signing keys and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from trunkline.storage.models import AgentIdentity, ApiToken, Organization


class IdentityStore(Protocol):
    """Who may use trunkline: organisations, agent identities and their credentials."""

    async def create_organization(self, name: str) -> Organization:
        """Store a new organisation with a fresh id."""
        ...

    async def get_organization(self, organization_id: str) -> Organization | None:
        """The organisation, or None."""
        ...

    async def list_organizations(self, *, limit: int = 500, offset: int = 0) -> list[Organization]:
        """Every organisation, oldest first, a page at a time."""
        ...

    async def create_identity(
        self, organization_id: str, agent_handle: str, display_name: str | None
    ) -> AgentIdentity:
        """Store a new identity. Raises DuplicateHandle when the handle exists in the organisation."""
        ...

    async def get_identity(self, identity_id: str) -> AgentIdentity | None:
        """The identity, or None."""
        ...

    async def get_identity_by_handle(
        self, organization_id: str, agent_handle: str
    ) -> AgentIdentity | None:
        """The organisation's identity with this handle, or None."""
        ...

    async def list_identities(self, organization_id: str) -> list[AgentIdentity]:
        """The organisation's identities, oldest first."""
        ...

    async def set_identity_signing_key(self, identity_id: str, encrypted_key: str | None) -> None:
        """Replace (or with None, remove) the identity's encrypted signing key."""
        ...

    async def get_identity_signing_key(self, identity_id: str) -> str | None:
        """The encrypted signing key, or None when the identity has none."""
        ...

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
        """Store a token; with ``max_usable``, atomically against that cap.

        Raises TokenCapReached when the organisation already has ``max_usable``
        tokens that are neither revoked nor expired (checked and inserted in one
        transaction serialised on the organisation, like ``create_number``).
        """
        ...

    async def find_token(self, token_hash: str) -> ApiToken | None:
        """The token whose stored hash equals ``token_hash`` (unique index lookup).

        Revoked and expired tokens are returned too; ``ApiToken.is_usable`` decides.
        """
        ...

    async def get_token(self, token_id: str) -> ApiToken | None:
        """The token, or None."""
        ...

    async def find_tokens_by_prefix(self, prefix: str) -> list[ApiToken]:
        """Tokens whose display prefix equals ``prefix`` (at most a few; oldest first)."""
        ...

    async def list_tokens(
        self, organization_id: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[ApiToken]:
        """Tokens of one organisation (every organisation when None), oldest first."""
        ...

    async def revoke_token(self, token_id: str, now: datetime) -> ApiToken | None:
        """Set ``revoked_at`` (kept when already revoked); None when there is no such token."""
        ...
