"""Records the storage layer reads and writes. Plain data, no I/O.

Ids are UUID strings, timestamps timezone-aware UTC datetimes. The control API
turns these into the Inkbox JSON shapes; the gateway reads them to route calls.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

NumberType = Literal["toll_free", "local"]
NumberStatus = Literal["active", "paused", "released"]
IncomingCallAction = Literal["auto_accept", "auto_reject", "webhook"]
CallDirection = Literal["inbound", "outbound"]
CallStatus = Literal["initiated", "ringing", "answered", "completed", "failed", "canceled"]
HangupReason = Literal[
    "local",
    "remote",
    "max_duration",
    "voicemail",
    "rejected",
    "gateway_restart",
    "agent_overflow",
    "node_lost",
]
TranscriptParty = Literal["local", "remote", "system"]
TextDirection = Literal["inbound", "outbound"]
TextType = Literal["sms", "mms"]
TextStatus = Literal["active", "deleted"]
AgentProtocol = Literal["inkbox", "twilio"]
AgentAudio = Literal["mulaw8k", "pcm16_8k", "pcm16_16k", "pcm16_24k"]

CALL_ENDED_STATUSES: frozenset[str] = frozenset({"completed", "failed", "canceled"})
CALL_LIVE_STATUSES: tuple[CallStatus, ...] = ("initiated", "ringing", "answered")


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Organization:
    id: str
    name: str
    created_at: datetime


@dataclass(slots=True)
class AgentIdentity:
    id: str
    organization_id: str
    agent_handle: str
    display_name: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class ApiToken:
    """A token's scope and lifetime. Only a hash of the token itself is ever stored.

    ``prefix`` is the token's first few characters, kept so operators can
    recognise a token in a list; it is far too short to authenticate with.
    """

    id: str
    organization_id: str
    agent_identity_id: str | None
    created_at: datetime
    prefix: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.agent_identity_id is None

    def is_usable(self, now: datetime) -> bool:
        """Not revoked and not expired at ``now``."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(slots=True)
class InboundRouting:
    """Bring-your-own-number routing: primary agent, fallback agent, voicemail text."""

    agent_id: str | None = None
    fallback_agent_id: str | None = None
    voicemail_message: str | None = None


@dataclass(slots=True)
class PhoneNumber:
    id: str
    organization_id: str
    number: str
    type: NumberType
    status: NumberStatus
    incoming_call_action: IncomingCallAction
    client_websocket_url: str | None
    incoming_call_webhook_url: str | None
    agent_identity_id: str | None
    state: str | None
    country: str
    created_at: datetime
    updated_at: datetime
    sms_status: str = "ready"
    filter_mode: str = "blacklist"
    # Bring-your-own-number (seed 004) and gateway options.
    provider: str | None = None
    friendly_name: str | None = None
    trunk_address: str | None = None
    auth_username: str | None = None
    auth_password_encrypted: str | None = None
    inbound_routing: InboundRouting | None = None
    agent_protocol: AgentProtocol = "inkbox"
    agent_audio: AgentAudio = "mulaw8k"
    recording_enabled: bool = True
    carrier_order_id: str | None = None
    # Outbound registration (provider_config.register): the binding trunkline keeps at the
    # registrar (default: the trunk address), and its last known status.
    sip_register: bool = False
    registrar: str | None = None
    registration_state: str | None = None  # pending | registered | failed
    registration_expires_at: datetime | None = None
    registration_error: str | None = None


@dataclass(slots=True)
class IncomingCallConfig:
    agent_identity_id: str
    incoming_call_action: IncomingCallAction
    client_websocket_url: str | None
    incoming_call_webhook_url: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class Call:
    id: str
    organization_id: str
    phone_number_id: str
    local_phone_number: str
    remote_phone_number: str
    direction: CallDirection
    status: CallStatus
    client_websocket_url: str | None
    use_inkbox_tts: bool | None
    use_inkbox_stt: bool | None
    hangup_reason: HangupReason | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime
    sip_call_id: str | None = None
    owner: str | None = None  # which process carries the live call ("<node id>:<slot>")
    recording_key: str | None = None
    failure_detail: str | None = None

    @classmethod
    def initiated(
        cls,
        number: PhoneNumber,
        *,
        remote_phone_number: str,
        direction: CallDirection,
        client_websocket_url: str | None = None,
        now: datetime | None = None,
        **extra: Any,
    ) -> Call:
        """A new call on ``number`` in its first status, ``initiated``."""
        now = now or utcnow()
        return cls(
            id=new_id(),
            organization_id=number.organization_id,
            phone_number_id=number.id,
            local_phone_number=number.number,
            remote_phone_number=remote_phone_number,
            direction=direction,
            status="initiated",
            client_websocket_url=client_websocket_url,
            use_inkbox_tts=None,
            use_inkbox_stt=None,
            hangup_reason=None,
            started_at=None,
            ended_at=None,
            created_at=now,
            updated_at=now,
            **extra,
        )


@dataclass(slots=True)
class TranscriptSegment:
    id: str
    call_id: str
    seq: int
    ts_ms: int
    party: TranscriptParty
    text: str
    created_at: datetime


@dataclass(slots=True)
class MediaItem:
    """One MMS attachment; ``blob_key`` names it in the blob store."""

    content_type: str
    size: int
    blob_key: str


@dataclass(slots=True)
class Text:
    id: str
    organization_id: str
    phone_number_id: str
    direction: TextDirection
    local_phone_number: str
    remote_phone_number: str
    text: str | None
    type: TextType
    media: list[MediaItem] | None
    status: TextStatus
    is_read: bool
    created_at: datetime
    updated_at: datetime
    carrier_message_id: str | None = None
    delivery_status: str | None = None


@dataclass(slots=True)
class Conversation:
    remote_phone_number: str
    latest_text: str | None
    latest_direction: TextDirection
    latest_type: TextType
    latest_message_at: datetime
    unread_count: int
    total_count: int


@dataclass(slots=True)
class EventDraft:
    """An event to put in the outbox in the same transaction as its cause."""

    event_type: str
    organization_id: str
    data: dict[str, Any]
    phone_number_id: str | None = None
    agent_identity_id: str | None = None
    id: str = field(default_factory=lambda: f"evt_{uuid.uuid4().hex}")
    created_at: datetime = field(default_factory=utcnow)


SubscriptionStatus = Literal["active", "disabled", "deleted"]
DeliveryState = Literal["pending", "delivered", "failed"]


@dataclass(slots=True)
class WebhookSubscription:
    """Where an identity's (or one number's) events are delivered."""

    id: str
    organization_id: str
    agent_identity_id: str | None
    phone_number_id: str | None
    url: str
    event_types: list[str]
    status: SubscriptionStatus
    created_at: datetime
    updated_at: datetime
    auth_token_encrypted: str | None = None
    disabled_reason: str | None = None


@dataclass(slots=True)
class DueDelivery:
    """One event owed to one subscription, leased to a delivery worker."""

    id: str
    attempts: int
    event: EventDraft
    subscription: WebhookSubscription
    leased_until: datetime | None = None  # the lease's end: no request may outlast it


@dataclass(slots=True)
class WebhookAttempt:
    """One logged HTTP attempt (the delivery log the API lists)."""

    id: str
    organization_id: str
    subscription_id: str | None
    phone_number_id: str | None
    event_id: str
    event_type: str
    url: str
    request_payload: str
    response_status: int | None
    response_body: str | None
    error_detail: str | None
    duration_ms: int | None
    is_replay: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A process sharing the database: its owner name, where it listens, its last heartbeat."""

    id: str  # the owner name on the calls it carries, "<node id>:<slot>"
    address: str | None
    started_at: datetime
    last_seen: datetime
    takeover_until: datetime | None = None
