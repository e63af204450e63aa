"""The storage contract. SQLite and PostgreSQL implement it and pass one test suite.

Rules every implementation keeps:
- Methods are coroutines and never block the event loop.
- Each method is one transaction. Methods taking ``events`` write those
  ``EventDraft`` rows to the outbox in the same transaction as the change.
- "Not found" is ``None`` (or an empty list), never an exception. Rule
  violations raise the ``StorageError`` subclasses below, with nothing written.
- Lists are bounded by ``limit``/``offset``; callers validate ranges.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from trunkline.storage.models import (
    AgentIdentity,
    ApiToken,
    Call,
    CallStatus,
    Conversation,
    DeliveryState,
    DueDelivery,
    EventDraft,
    IncomingCallConfig,
    Organization,
    PhoneNumber,
    Text,
    TranscriptParty,
    TranscriptSegment,
    WebhookAttempt,
    WebhookSubscription,
)


class StorageError(Exception):
    """Base of the rule violations the storage layer reports."""


class NumberCapReached(StorageError):
    """The organisation already holds the maximum number of active numbers."""


class TokenCapReached(StorageError):
    """The organisation already holds the maximum number of usable tokens."""


class NumberInUse(StorageError):
    """The E.164 number is already active (in this or another organisation)."""


class DuplicateHandle(StorageError):
    """The organisation already has an identity with this handle."""


class Repository(abc.ABC):
    """Everything trunkline persists. Obtain one with ``trunkline.storage.open_repository``."""

    backend: str  # "sqlite" | "postgresql"

    # -- lifecycle ---------------------------------------------------------
    @abc.abstractmethod
    async def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied (empty if none)."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the database answers a trivial query."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    def queue_wait_seconds(self) -> float:
        """How long the oldest job waiting for the database has waited (0 when none)."""
        return 0.0

    @abc.abstractmethod
    def limit_queues(self, *, per_tenant: int, sheddable_per_tenant: int) -> None:
        """Bound the database jobs one organisation may have waiting (essential, sheddable)."""

    # -- organisations, identities, tokens ----------------------------------
    @abc.abstractmethod
    async def create_organization(self, name: str) -> Organization: ...

    @abc.abstractmethod
    async def get_organization(self, organization_id: str) -> Organization | None: ...

    @abc.abstractmethod
    async def create_identity(
        self, organization_id: str, agent_handle: str, display_name: str | None
    ) -> AgentIdentity:
        """Raises DuplicateHandle when the handle exists in the organisation."""

    @abc.abstractmethod
    async def get_identity(self, identity_id: str) -> AgentIdentity | None: ...

    @abc.abstractmethod
    async def get_identity_by_handle(
        self, organization_id: str, agent_handle: str
    ) -> AgentIdentity | None: ...

    @abc.abstractmethod
    async def list_identities(self, organization_id: str) -> list[AgentIdentity]: ...

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def find_token(self, token_hash: str) -> ApiToken | None:
        """The token whose stored hash equals ``token_hash`` (unique index lookup).

        Revoked and expired tokens are returned too; ``ApiToken.is_usable`` decides.
        """

    @abc.abstractmethod
    async def get_token(self, token_id: str) -> ApiToken | None: ...

    @abc.abstractmethod
    async def find_tokens_by_prefix(self, prefix: str) -> list[ApiToken]:
        """Tokens whose display prefix equals ``prefix`` (at most a few; oldest first)."""

    @abc.abstractmethod
    async def list_tokens(
        self, organization_id: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[ApiToken]:
        """Tokens of one organisation (every organisation when None), oldest first."""

    @abc.abstractmethod
    async def revoke_token(self, token_id: str, now: datetime) -> ApiToken | None:
        """Set ``revoked_at`` (kept when already revoked); None when there is no such token."""

    @abc.abstractmethod
    async def set_identity_signing_key(
        self, identity_id: str, encrypted_key: str | None
    ) -> None: ...

    @abc.abstractmethod
    async def get_identity_signing_key(self, identity_id: str) -> str | None:
        """The encrypted signing key, or None when the identity has none."""

    # -- phone numbers -----------------------------------------------------
    @abc.abstractmethod
    async def create_number(self, number: PhoneNumber, max_active: int) -> PhoneNumber:
        """Insert an active number atomically against the cap.

        Raises NumberCapReached when the organisation already has ``max_active``
        active numbers (checked and inserted in one serialised transaction, so
        concurrent calls cannot exceed it) and NumberInUse when the E.164 number
        is already active anywhere.
        """

    @abc.abstractmethod
    async def get_number(self, phone_number_id: str) -> PhoneNumber | None: ...

    @abc.abstractmethod
    async def find_active_number(self, e164: str) -> PhoneNumber | None:
        """The active (or paused) number with this E.164 value, for call routing."""

    @abc.abstractmethod
    async def list_numbers(
        self, organization_id: str, agent_identity_id: str | None = None
    ) -> list[PhoneNumber]:
        """The organisation's numbers (released ones too), oldest first; optionally one identity's."""

    @abc.abstractmethod
    async def update_number(
        self, phone_number_id: str, changes: Mapping[str, Any]
    ) -> PhoneNumber | None:
        """Set the named PhoneNumber fields (and updated_at); None when not found."""

    @abc.abstractmethod
    async def release_number(self, phone_number_id: str) -> PhoneNumber | None:
        """Status ``released``, identity unlinked; None when not found."""

    @abc.abstractmethod
    async def active_numbers_in_use(self) -> list[str]:
        """Every E.164 number currently active or paused (inventory avoids these)."""

    # -- incoming-call configuration ----------------------------------------
    @abc.abstractmethod
    async def upsert_incoming_call_config(
        self, config: IncomingCallConfig
    ) -> IncomingCallConfig: ...

    @abc.abstractmethod
    async def get_incoming_call_config(
        self, agent_identity_id: str
    ) -> IncomingCallConfig | None: ...

    # -- calls ---------------------------------------------------------------
    @abc.abstractmethod
    async def create_call(self, call: Call, events: Sequence[EventDraft] = ()) -> Call: ...

    @abc.abstractmethod
    async def get_call(self, call_id: str) -> Call | None: ...

    @abc.abstractmethod
    async def list_calls(
        self,
        organization_id: str,
        *,
        phone_number_id: str | None = None,
        agent_identity_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Call]:
        """Newest first. ``agent_identity_id`` keeps calls on that identity's numbers."""

    @abc.abstractmethod
    async def list_live_calls(self, owner: str, *, limit: int = 100) -> list[Call]:
        """Calls ``owner`` carries that have not ended (initiated, ringing, answered), oldest first."""

    @abc.abstractmethod
    async def update_call(
        self,
        call_id: str,
        changes: Mapping[str, Any],
        *,
        only_if_status: Sequence[CallStatus] | None = None,
        events: Sequence[EventDraft] = (),
    ) -> Call | None:
        """Apply ``changes`` (and updated_at) when the call's status is in ``only_if_status``.

        Returns the updated call, or None when the call does not exist or its
        status did not match (nothing written, no events). The check and write
        are one atomic statement, so two racing hang-ups cannot both win.
        """

    # -- transcripts -----------------------------------------------------------
    @abc.abstractmethod
    async def add_transcript_segment(
        self,
        call_id: str,
        party: TranscriptParty,
        text: str,
        ts_ms: int,
        events: Sequence[EventDraft] = (),
    ) -> TranscriptSegment:
        """Append with the next ``seq`` for the call (0, 1, 2, … without gaps)."""

    @abc.abstractmethod
    async def add_transcript_segments(
        self,
        call_id: str,
        segments: Sequence[tuple[TranscriptParty, str, int]],
        events: Sequence[EventDraft] = (),
    ) -> list[TranscriptSegment]:
        """Append (party, text, ts_ms) segments in order, in one transaction, with the next seqs."""

    @abc.abstractmethod
    async def list_transcripts(self, call_id: str) -> list[TranscriptSegment]:
        """Ordered by seq."""

    @abc.abstractmethod
    async def search_transcripts(
        self,
        phone_number_id: str,
        query: str,
        *,
        party: TranscriptParty | None = None,
        limit: int = 50,
    ) -> list[TranscriptSegment]:
        """Full-text search over the number's calls' segments, best match first."""

    # -- texts -----------------------------------------------------------------
    @abc.abstractmethod
    async def insert_text(self, text: Text, events: Sequence[EventDraft] = ()) -> tuple[Text, bool]:
        """Store a text; idempotent on (phone_number_id, carrier_message_id).

        Returns (stored text, True) when inserted, (existing text, False) when a
        text with the same carrier message id already exists (no events written).
        """

    @abc.abstractmethod
    async def get_text(self, phone_number_id: str, text_id: str) -> Text | None: ...

    @abc.abstractmethod
    async def list_texts(
        self,
        phone_number_id: str,
        *,
        is_read: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Text]:
        """Newest first, deleted texts excluded."""

    @abc.abstractmethod
    async def update_text(
        self,
        phone_number_id: str,
        text_id: str,
        *,
        is_read: bool | None = None,
        deleted: bool = False,
    ) -> Text | None: ...

    @abc.abstractmethod
    async def update_text_delivery(
        self, phone_number_id: str, carrier_message_id: str, delivery_status: str
    ) -> Text | None: ...

    @abc.abstractmethod
    async def search_texts(
        self, phone_number_id: str, query: str, *, limit: int = 50
    ) -> list[Text]:
        """Full-text search over bodies, best match first, deleted excluded."""

    @abc.abstractmethod
    async def list_conversations(
        self, phone_number_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[Conversation]:
        """One row per remote number (deleted texts excluded), most recent first."""

    @abc.abstractmethod
    async def list_conversation(
        self, phone_number_id: str, remote_phone_number: str, *, limit: int = 50, offset: int = 0
    ) -> list[Text]:
        """Messages with one remote party, newest first, deleted excluded."""

    @abc.abstractmethod
    async def mark_conversation_read(
        self, phone_number_id: str, remote_phone_number: str, is_read: bool
    ) -> int:
        """Set is_read on the conversation's non-deleted texts; return how many changed."""

    @abc.abstractmethod
    async def count_outbound_recipients_since(
        self, phone_number_id: str, since_epoch_seconds: float
    ) -> int:
        """Distinct remote numbers this number sent texts to since then (send limits)."""

    # -- outbox --------------------------------------------------------------
    @abc.abstractmethod
    async def add_events(self, events: Sequence[EventDraft]) -> None:
        """Write events that have no accompanying state change."""

    @abc.abstractmethod
    async def list_events(self, organization_id: str, *, limit: int = 50) -> list[EventDraft]:
        """Newest first; the webhook worker adds delivery state on top of this table."""

    # -- webhook subscriptions and delivery ------------------------------------
    @abc.abstractmethod
    async def create_subscription(self, subscription: WebhookSubscription) -> WebhookSubscription:
        """Store an active subscription; events written afterwards fan out to it."""

    @abc.abstractmethod
    async def get_subscription(self, subscription_id: str) -> WebhookSubscription | None:
        """Active or disabled (not deleted) subscription."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def update_subscription(
        self, subscription_id: str, changes: Mapping[str, Any]
    ) -> WebhookSubscription | None:
        """Set url/event_types/status/auth_token_encrypted/disabled_reason; None if not found."""

    @abc.abstractmethod
    async def delete_subscription(self, subscription_id: str) -> bool:
        """Mark deleted and drop its pending deliveries; False when not found."""

    @abc.abstractmethod
    async def claim_due_deliveries(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[DueDelivery]:
        """Lease up to ``limit`` pending deliveries due by ``now``, oldest due first.

        A lease hides the delivery from other claims until it expires, so a
        worker that dies mid-delivery leaves it to be retried (at least once).
        """

    @abc.abstractmethod
    async def finish_delivery(
        self,
        delivery_id: str,
        attempt: WebhookAttempt,
        *,
        state: DeliveryState,
        next_attempt_at: datetime | None,
        disable_subscription: str | None = None,
    ) -> None:
        """Log the attempt and set the delivery's next state in one transaction.

        ``disable_subscription`` (a reason) disables the subscription too and
        fails its other pending deliveries.
        """

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def pending_deliveries(self) -> int:
        """How many deliveries are still owed (drain waits for this to reach zero)."""
