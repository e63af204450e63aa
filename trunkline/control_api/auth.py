"""Who is calling: the service token in ``X-Service-Token`` or ``X-API-Key``.

Only the token's hash is looked up (a unique-index equality match on the
stored hash, so no secret comparison happens in Python), and the token itself
is never logged. A header value outside printable ASCII (raw non-UTF-8 bytes
reach us as surrogate escapes) names no token: 401 before any lookup. A token belongs to one organisation; an admin token
(no identity) sees the whole organisation, an identity token only the numbers,
configuration, calls and texts of its identity.

A token that is revoked, or whose ``expires_at`` has passed, is refused (401).
The token is read from the database on every request (there is no
per-process token cache), so a revocation made through any worker or the CLI
holds on the very next request in every worker process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trunkline.control_api.errors import ApiError
from trunkline.crypto import hash_token
from trunkline.metrics import API_TOKENS_REFUSED
from trunkline.storage.models import utcnow
from trunkline.storage.stores import IdentityStore
from trunkline.tokens import token_status

TOKEN_HEADERS = ("X-Service-Token", "X-API-Key")
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    organization_id: str
    agent_identity_id: str | None  # None: admin token, whole organisation

    @property
    def is_admin(self) -> bool:
        return self.agent_identity_id is None

    def may_see_identity(self, agent_identity_id: str | None) -> bool:
        """Admin tokens see every identity; identity tokens only their own."""
        return self.is_admin or agent_identity_id == self.agent_identity_id


def presented_token(headers: Mapping[str, str]) -> str | None:
    for name in TOKEN_HEADERS:
        value = headers.get(name)
        if value:
            return value.strip()
    return None


def _is_printable_ascii(token: str) -> bool:
    """Tokens are printable ASCII; other header bytes arrive as escapes no token holds."""
    return token.isascii() and token.isprintable()


async def authenticate(headers: Mapping[str, str], identities: IdentityStore) -> Principal:
    """The caller's Principal; ApiError(401) when the token is missing or unknown."""
    token = presented_token(headers)
    if not token:
        raise ApiError(
            401, "Missing service token: send it in the X-Service-Token or X-API-Key header"
        )
    return await token_principal(token, identities)


async def token_principal(token: str, identities: IdentityStore) -> Principal:
    """The Principal of a presented service token; ApiError(401) when it names none."""
    if len(token) > MAX_TOKEN_LENGTH or not _is_printable_ascii(token):
        raise ApiError(401, "Invalid service token")
    record = await identities.find_token(hash_token(token))
    if record is None:
        raise ApiError(401, "Invalid service token")
    status = token_status(record, utcnow())
    if status != "active":
        API_TOKENS_REFUSED.labels(status).inc()
        raise ApiError(401, "Service token revoked or expired")
    return Principal(record.id, record.organization_id, record.agent_identity_id)
