"""Stores a verified carrier message as an inbound text, with its media and event.

Idempotent on the carrier message id: a repeated webhook stores nothing new
(media blobs are keyed by that id too, so a repeat overwrites, never adds).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from trunkline.messaging.carrier_formats import DeliveryReport, InboundMessage
from trunkline.messaging.mms_fetch import FetchedMedia
from trunkline.messaging.text_json import text_json
from trunkline.storage.blobs import BlobStore
from trunkline.storage.models import EventDraft, MediaItem, Text, new_id, utcnow
from trunkline.storage.stores import NumberStore, TextStore

MEDIA_URL_TTL_SECONDS = 3600
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")

Fetch = Callable[[str], Awaitable[FetchedMedia]]


class TextsAndNumbers(TextStore, NumberStore, Protocol):
    """What ingress uses: the active number a message is for, and the texts on it."""


class UnknownNumber(Exception):
    """The message is for a number that is not active on this server."""


class TextIngress:
    def __init__(self, store: TextsAndNumbers, blobs: BlobStore, fetch: Fetch) -> None:
        self._store = store
        self._blobs = blobs
        self._fetch = fetch

    async def receive(self, message: InboundMessage) -> tuple[Text, bool]:
        """Store the message; (text, False) when this carrier message was already stored."""
        number = await self._store.find_active_number(message.to_number)
        if number is None:
            raise UnknownNumber(message.to_number)
        folder = _UNSAFE_KEY_CHARACTERS.sub("_", f"{message.carrier}-{message.carrier_message_id}")
        media: list[MediaItem] = []
        for index, reference in enumerate(message.media):
            fetched = await self._fetch(reference.url)
            key = f"mms/{number.id}/{folder}/{index}{fetched.extension}"
            await self._blobs.put(key, fetched.data, fetched.content_type)
            media.append(MediaItem(fetched.content_type, len(fetched.data), key))
        now = utcnow()
        text = Text(
            id=new_id(),
            organization_id=number.organization_id,
            phone_number_id=number.id,
            direction="inbound",
            local_phone_number=number.number,
            remote_phone_number=message.from_number,
            text=message.text,
            type="mms" if media else "sms",
            media=media or None,
            status="active",
            is_read=False,
            created_at=now,
            updated_at=now,
            carrier_message_id=f"{message.carrier}:{message.carrier_message_id}",
        )
        return await self._store.insert_text(
            text, [self.received_event(text, number.agent_identity_id)]
        )

    def received_event(self, text: Text, agent_identity_id: str | None) -> EventDraft:
        data = text_json(text, lambda key: self._blobs.presigned_url(key, MEDIA_URL_TTL_SECONDS))
        data["phone_number_id"] = text.phone_number_id
        return EventDraft(
            "text.received",
            text.organization_id,
            data,
            phone_number_id=text.phone_number_id,
            agent_identity_id=agent_identity_id,
        )

    async def delivery_report(self, carrier: str, report: DeliveryReport) -> bool:
        number = await self._store.find_active_number(report.from_number)
        if number is None:
            return False
        updated = await self._store.update_text_delivery(
            number.id, f"{carrier}:{report.carrier_message_id}", report.status
        )
        return updated is not None
