"""Signs each delivery with the signing key of the identity that owns its subscription."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from trunkline.crypto import InvalidSecret, SecretBox
from trunkline.storage.models import DueDelivery
from trunkline.storage.stores import IdentityStore, NumberStore
from trunkline.webhooks.signing import sign_headers

log = logging.getLogger("trunkline.outbox")


class NumbersAndIdentities(NumberStore, IdentityStore, Protocol):
    """What the signer reads: a subscription's number, then its identity's sealed key."""


class IdentitySigner:
    """Unsigned until the owning identity has a key (as the Inkbox scheme specifies)."""

    def __init__(self, store: NumbersAndIdentities, secret_box: SecretBox) -> None:
        self._store = store
        self._secret_box = secret_box

    async def owner_identity(self, delivery: DueDelivery) -> str | None:
        subscription = delivery.subscription
        if subscription.agent_identity_id is not None:
            return subscription.agent_identity_id
        if subscription.phone_number_id is None:
            return None
        number = await self._store.get_number(subscription.phone_number_id)
        return None if number is None else number.agent_identity_id

    async def __call__(
        self, delivery: DueDelivery, body: bytes, timestamp: int
    ) -> Mapping[str, str] | None:
        identity = await self.owner_identity(delivery)
        if identity is None:
            return None
        sealed = await self._store.get_identity_signing_key(identity)
        if sealed is None:
            return None
        try:
            key = self._secret_box.decrypt(sealed)
        except InvalidSecret:
            log.error("cannot open a signing key: was TRUNKLINE_SECRET_KEY changed?")
            return None
        # The request id is the event id: stable across every retry of the event.
        return sign_headers(key, delivery.event.id, body, timestamp)
