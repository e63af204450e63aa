"""NumberStore: phone numbers (provisioning, routing lookups) and incoming-call configs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from trunkline.storage.models import IncomingCallConfig, PhoneNumber


class NumberStore(Protocol):
    """The organisations' phone numbers and how their identities take incoming calls."""

    async def create_number(self, number: PhoneNumber, max_active: int) -> PhoneNumber:
        """Insert an active number atomically against the cap.

        Raises NumberCapReached when the organisation already has ``max_active``
        active numbers (checked and inserted in one serialised transaction, so
        concurrent calls cannot exceed it) and NumberInUse when the E.164 number
        is already active anywhere.
        """
        ...

    async def get_number(self, phone_number_id: str) -> PhoneNumber | None:
        """The number (whatever its status), or None."""
        ...

    async def find_active_number(self, e164: str) -> PhoneNumber | None:
        """The active (or paused) number with this E.164 value, for call routing."""
        ...

    async def list_numbers(
        self, organization_id: str, agent_identity_id: str | None = None
    ) -> list[PhoneNumber]:
        """The organisation's numbers (released ones too), oldest first; optionally one identity's."""
        ...

    async def update_number(
        self, phone_number_id: str, changes: Mapping[str, Any]
    ) -> PhoneNumber | None:
        """Set the named PhoneNumber fields (and updated_at); None when not found.

        Raises NumberInUse when a changed E.164 value is already active elsewhere.
        """
        ...

    async def release_number(self, phone_number_id: str) -> PhoneNumber | None:
        """Status ``released``, identity unlinked; None when not found."""
        ...

    async def active_numbers_in_use(self) -> list[str]:
        """Every E.164 number currently active or paused (inventory avoids these)."""
        ...

    async def numbers_to_register(self) -> list[PhoneNumber]:
        """Every active or paused number with ``sip_register`` set, of every organisation."""
        ...

    async def set_registration(
        self,
        phone_number_id: str,
        state: str | None,
        expires_at: datetime | None,
        error: str | None,
    ) -> None:
        """Record a number's registration status (``updated_at`` is left alone: it is not
        a change of the number's settings)."""
        ...

    async def upsert_incoming_call_config(self, config: IncomingCallConfig) -> IncomingCallConfig:
        """Insert or replace the identity's config (``created_at`` of the first one is kept)."""
        ...

    async def get_incoming_call_config(self, agent_identity_id: str) -> IncomingCallConfig | None:
        """The identity's incoming-call config, or None."""
        ...
