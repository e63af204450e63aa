"""API tokens: issuing one (shown once, stored hashed) and describing one's state.

The CLI and the ``/api-keys`` endpoints both go through here, so a token
made either way looks the same: ``tl_`` plus 43 random URL-safe characters,
stored as its keyed hash with a short display prefix and an optional expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from trunkline.crypto import hash_token, new_token, token_display_prefix
from trunkline.storage.models import ApiToken
from trunkline.storage.stores import IdentityStore

TokenStatus = Literal["active", "expired", "revoked"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    record: ApiToken
    secret: str  # shown to the caller once, never stored or logged


async def issue_token(
    identities: IdentityStore,
    organization_id: str,
    agent_identity_id: str | None,
    *,
    expires_at: datetime | None = None,
    max_usable: int | None = None,
) -> IssuedToken:
    """A new token; raises TokenCapReached past ``max_usable`` (see ``create_token``)."""
    secret = new_token()
    record = await identities.create_token(
        organization_id,
        agent_identity_id,
        hash_token(secret),
        prefix=token_display_prefix(secret),
        expires_at=expires_at,
        max_usable=max_usable,
    )
    return IssuedToken(record, secret)


def token_status(token: ApiToken, now: datetime) -> TokenStatus:
    if token.revoked_at is not None:
        return "revoked"
    if not token.is_usable(now):
        return "expired"
    return "active"
