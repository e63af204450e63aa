"""Signature headers an agent identity's key puts on what trunkline sends its agent."""

from __future__ import annotations

from trunkline.crypto import SecretBox
from trunkline.storage.models import utcnow
from trunkline.storage.stores import IdentityStore
from trunkline.webhooks.signing import sign_headers


class IdentitySigner:
    def __init__(self, repository: IdentityStore, secret_box: SecretBox) -> None:
        self._repository = repository
        self._secret_box = secret_box

    async def headers(
        self, identity_id: str | None, request_id: str, body: bytes
    ) -> dict[str, str]:
        """The signature headers for ``body``; none when the identity has no signing key."""
        if identity_id is None:
            return {}
        sealed = await self._repository.get_identity_signing_key(identity_id)
        if sealed is None:
            return {}
        key = self._secret_box.decrypt(sealed)
        return sign_headers(key, request_id, body, int(utcnow().timestamp()))
