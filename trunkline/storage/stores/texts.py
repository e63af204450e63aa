"""TextStore: texts (SMS/MMS) of a number and the per-remote-party conversation summaries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from trunkline.storage.models import Conversation, EventDraft, Text


class TextStore(Protocol):
    """A number's texts, their read and delivery state, and its conversations."""

    async def insert_text(self, text: Text, events: Sequence[EventDraft] = ()) -> tuple[Text, bool]:
        """Store a text; idempotent on (phone_number_id, carrier_message_id).

        Returns (stored text, True) when inserted, (existing text, False) when a
        text with the same carrier message id already exists (no events written).
        """
        ...

    async def get_text(self, phone_number_id: str, text_id: str) -> Text | None:
        """The number's text, or None (also when deleted)."""
        ...

    async def list_texts(
        self,
        phone_number_id: str,
        *,
        is_read: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Text]:
        """Newest first, deleted texts excluded."""
        ...

    async def update_text(
        self,
        phone_number_id: str,
        text_id: str,
        *,
        is_read: bool | None = None,
        deleted: bool = False,
    ) -> Text | None:
        """Mark read/unread or delete, keeping the conversation summary; None when not found."""
        ...

    async def update_text_delivery(
        self, phone_number_id: str, carrier_message_id: str, delivery_status: str
    ) -> Text | None:
        """Record the carrier's delivery status for a sent text; None when not found."""
        ...

    async def search_texts(
        self, phone_number_id: str, query: str, *, limit: int = 50
    ) -> list[Text]:
        """Full-text search over bodies, best match first, deleted excluded."""
        ...

    async def list_conversations(
        self, phone_number_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Conversation]:
        """One row per remote number (deleted texts excluded), most recent first."""
        ...

    async def list_conversation(
        self, phone_number_id: str, remote_phone_number: str, *, limit: int = 50, offset: int = 0
    ) -> list[Text]:
        """Messages with one remote party, newest first, deleted excluded."""
        ...

    async def mark_conversation_read(
        self, phone_number_id: str, remote_phone_number: str, is_read: bool
    ) -> int:
        """Set is_read on the conversation's non-deleted texts; return how many changed."""
        ...

    async def count_outbound_recipients_since(
        self, phone_number_id: str, since_epoch_seconds: float
    ) -> int:
        """Distinct remote numbers this number sent texts to since then (send limits)."""
        ...
