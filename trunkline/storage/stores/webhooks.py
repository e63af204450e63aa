"""WebhookStore: the event outbox, webhook subscriptions, deliveries and their attempts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from trunkline.storage.models import (
    DeliveryState,
    DueDelivery,
    EventDraft,
    WebhookAttempt,
    WebhookSubscription,
)


class WebhookStore(Protocol):
    """Events owed to subscribers and the bookkeeping of delivering them (at least once)."""

    async def add_events(self, events: Sequence[EventDraft]) -> None:
        """Write events that have no accompanying state change."""
        ...

    async def list_events(self, organization_id: str, *, limit: int = 50) -> list[EventDraft]:
        """Newest first; the webhook worker adds delivery state on top of this table."""
        ...

    async def create_subscription(self, subscription: WebhookSubscription) -> WebhookSubscription:
        """Store an active subscription; events written afterwards fan out to it."""
        ...

    async def get_subscription(self, subscription_id: str) -> WebhookSubscription | None:
        """Active or disabled (not deleted) subscription."""
        ...

    async def list_subscriptions(
        self,
        organization_id: str,
        *,
        agent_identity_id: str | None = None,
        phone_number_id: str | None = None,
        url: str | None = None,
        event_type: str | None = None,
    ) -> list[WebhookSubscription]:
        """Not deleted, oldest first; filters AND-combine."""
        ...

    async def update_subscription(
        self, subscription_id: str, changes: Mapping[str, Any]
    ) -> WebhookSubscription | None:
        """Set url/event_types/status/auth_token_encrypted/disabled_reason; None if not found."""
        ...

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Mark deleted and drop its pending deliveries; False when not found."""
        ...

    async def claim_due_deliveries(
        self, now: datetime, limit: int, lease_seconds: float, *, lessee: str = ""
    ) -> list[DueDelivery]:
        """Lease up to ``limit`` pending deliveries due by ``now`` to ``lessee``, oldest due first.

        A lease hides the delivery from other claims until it expires, so a
        worker that dies mid-delivery leaves it to be retried (at least once).
        Claimers on several connections (or machines) never get the same row
        (PostgreSQL skips rows another claim has locked; SQLite serialises).
        """
        ...

    async def finish_delivery(
        self,
        delivery_id: str,
        attempt: WebhookAttempt,
        *,
        state: DeliveryState,
        next_attempt_at: datetime | None,
        disable_subscription: str | None = None,
        lessee: str = "",
    ) -> bool:
        """Log the attempt and set the delivery's next state in one transaction.

        The state changes only while the delivery is still leased to ``lessee``:
        after its lease expired and another worker claimed it, the attempt is
        logged but nothing else changes, and the answer is False (the lease was
        lost). ``disable_subscription`` (a reason) disables the subscription too
        and fails its other pending deliveries.
        """
        ...

    async def release_leases(self, lessee: str) -> int:
        """Hand back the pending deliveries leased to ``lessee`` (a worker that stops with
        none in flight): due ones can be claimed at once. Returns how many."""
        ...

    async def list_attempts(
        self,
        organization_id: str,
        *,
        subscription_id: str | None = None,
        phone_number_id: str | None = None,
        event_type: str | None = None,
        success: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[WebhookAttempt]:
        """Newest first; ``success`` keeps 2xx responses (True) or the rest (False)."""
        ...

    async def pending_deliveries(self) -> int:
        """How many deliveries are still owed (drain waits for this to reach zero)."""
        ...
