"""The JSON objects the API returns and the field schemas requests share.

Response shapes follow the Inkbox Phone API (seeds 001-003 and the Inkbox
SDK's parsers); ``serialize`` produces them and the OpenAPI document lists
these schemas under ``components.schemas``.
"""

from __future__ import annotations

from trunkline.carriers.numbering import E164_PATTERN
from trunkline.control_api.schema import Schema, array, boolean, integer, obj, ref, string

# -- request field schemas --------------------------------------------------------

E164 = string(
    pattern=E164_PATTERN,
    error="must be an E.164 number such as +14155550100",
    example="+14155550100",
)
REMOTE_NUMBER_PATTERN = r"^\+?[0-9]{1,15}$"
INCOMING_CALL_ACTIONS = ("auto_accept", "auto_reject", "webhook")
ACTION = string(enum=INCOMING_CALL_ACTIONS, description="How incoming calls are handled")
WS_URL = string(max_length=2048, nullable=True, description="Agent WebSocket URL (wss://)")
WEBHOOK_URL = string(max_length=2048, nullable=True, description="HTTPS webhook URL")
AGENT_PROTOCOL = string(
    enum=("inkbox", "twilio"), description="Message protocol on the agent WebSocket"
)
AGENT_AUDIO = string(
    enum=("mulaw8k", "pcm16_8k", "pcm16_16k", "pcm16_24k"),
    description="Audio format on the agent WebSocket",
)
UUID_STRING = string(fmt="uuid", max_length=36)
AGENT_REF = string(
    min_length=1,
    max_length=100,
    pattern=r"^@?[^\s@/]+$",
    error="must be an agent identity id or handle",
    description="Agent identity id (UUID) or handle (leading @ optional)",
)
STATE = string(
    pattern=r"^[A-Z]{2}$",
    error="must be a two-letter US state code such as NY",
    description="US state code (local numbers only)",
)
TRUNK_ADDRESS = string(
    min_length=1,
    max_length=255,
    pattern=r"^(sips?:)?([A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(;transport=(udp|tcp|tls|UDP|TCP|TLS))?$",
    error="must be a SIP trunk host name or address, optionally with :port"
    " (sips: or ;transport=tls|tcp for TLS or TCP)",
    description="SIP trunk [sips:]host[:port][;transport=udp|tcp|tls] that outbound INVITEs"
    " go to (sips: and transport=tls: TLS, port 5061 by default)",
)

# -- response objects ----------------------------------------------------------------

_TIMESTAMP = string(fmt="date-time")
_NULLABLE_TIMESTAMP = string(fmt="date-time", nullable=True)
_ID = string(fmt="uuid")


def _closed(properties: dict[str, Schema]) -> Schema:
    """A response object: every listed field is always present."""
    return obj(properties, required=tuple(properties))


PHONE_NUMBER = _closed(
    {
        "id": _ID,
        "number": string(),
        "type": string(enum=("toll_free", "local")),
        "status": string(enum=("active", "paused", "released")),
        "incoming_call_action": string(enum=INCOMING_CALL_ACTIONS),
        "client_websocket_url": string(nullable=True),
        "incoming_call_webhook_url": string(nullable=True),
        "agent_identity_id": string(fmt="uuid", nullable=True),
        "state": string(nullable=True),
        "country": string(),
        "sms_status": string(enum=("pending", "ready", "assignment_failed")),
        "filter_mode": string(enum=("whitelist", "blacklist")),
        "agent_protocol": string(enum=("inkbox", "twilio")),
        "agent_audio": string(enum=("mulaw8k", "pcm16_8k", "pcm16_16k", "pcm16_24k")),
        "recording_enabled": boolean(),
        "provider": string(nullable=True),
        "friendly_name": string(nullable=True),
        "provider_config": obj(
            {
                "trunk_address": string(nullable=True),
                "auth_username": string(nullable=True),
                "auth_password_set": boolean(),
                "register": boolean(),
                "registrar": string(nullable=True),
            },
            required=(
                "trunk_address",
                "auth_username",
                "auth_password_set",
                "register",
                "registrar",
            ),
            nullable=True,
        ),
        "registration": obj(
            {
                "state": string(enum=("pending", "registered", "failed")),
                "expires_at": string(fmt="date-time", nullable=True),
                "last_error": string(nullable=True),
            },
            required=("state", "expires_at", "last_error"),
            nullable=True,
            description="The number's SIP registration (null unless provider_config.register)",
        ),
        "inbound_routing": obj(
            {
                "agent_id": string(nullable=True),
                "fallback": obj({"agent_id": string()}, required=("agent_id",), nullable=True),
                "voicemail_message": string(nullable=True),
            },
            required=("agent_id", "fallback", "voicemail_message"),
            nullable=True,
        ),
        "created_at": _TIMESTAMP,
        "updated_at": _TIMESTAMP,
    }
)

CALL_PROPERTIES: dict[str, Schema] = {
    "id": _ID,
    "local_phone_number": string(),
    "remote_phone_number": string(),
    "direction": string(enum=("inbound", "outbound")),
    "status": string(enum=("initiated", "ringing", "answered", "completed", "failed", "canceled")),
    "client_websocket_url": string(nullable=True),
    "use_inkbox_tts": boolean(nullable=True),
    "use_inkbox_stt": boolean(nullable=True),
    "hangup_reason": string(
        enum=(
            "local",
            "remote",
            "max_duration",
            "voicemail",
            "rejected",
            "gateway_restart",
            "agent_overflow",
            "node_lost",
        ),
        nullable=True,
    ),
    "failure_detail": string(
        nullable=True,
        description="Why a failed call failed (e.g. the SIP status line 486 Busy Here); else null",
    ),
    "started_at": _NULLABLE_TIMESTAMP,
    "ended_at": _NULLABLE_TIMESTAMP,
    "created_at": _TIMESTAMP,
    "updated_at": _TIMESTAMP,
    "recording_url": string(nullable=True),
}
CALL = _closed(CALL_PROPERTIES)

RATE_LIMIT = _closed(
    {
        "calls_used": integer(minimum=0),
        "calls_remaining": integer(minimum=0),
        "calls_limit": integer(minimum=0),
        "minutes_used": integer(minimum=0),
        "minutes_remaining": integer(minimum=0),
        "minutes_limit": integer(minimum=0),
    }
)
CALL_WITH_RATE_LIMIT = _closed({**CALL_PROPERTIES, "rate_limit": ref("RateLimit")})

TRANSCRIPT = _closed(
    {
        "id": _ID,
        "call_id": _ID,
        "seq": integer(minimum=0),
        "ts_ms": integer(minimum=0),
        "party": string(enum=("local", "remote", "system")),
        "text": string(),
        "created_at": _TIMESTAMP,
    }
)

MEDIA_ITEM = _closed({"content_type": string(), "size": integer(minimum=0), "url": string()})

TEXT = _closed(
    {
        "id": _ID,
        "direction": string(enum=("inbound", "outbound")),
        "local_phone_number": string(),
        "remote_phone_number": string(),
        "text": string(nullable=True),
        "type": string(enum=("sms", "mms")),
        "media": {"type": ["array", "null"], "items": ref("MediaItem")},
        "status": string(enum=("active", "deleted")),
        "is_read": boolean(),
        "created_at": _TIMESTAMP,
        "updated_at": _TIMESTAMP,
    }
)

CONVERSATION = _closed(
    {
        "remote_phone_number": string(),
        "latest_text": string(nullable=True),
        "latest_direction": string(enum=("inbound", "outbound")),
        "latest_type": string(enum=("sms", "mms")),
        "latest_message_at": _TIMESTAMP,
        "unread_count": integer(minimum=0),
        "total_count": integer(minimum=0),
    }
)

CONVERSATION_UPDATE = _closed(
    {"remote_phone_number": string(), "is_read": boolean(), "updated_count": integer(minimum=0)}
)

INCOMING_CALL_CONFIG = _closed(
    {
        "agent_identity_id": _ID,
        "incoming_call_action": string(enum=INCOMING_CALL_ACTIONS),
        "client_websocket_url": string(nullable=True),
        "incoming_call_webhook_url": string(nullable=True),
    }
)

ERROR: Schema = {
    "type": "object",
    "properties": {"detail": {"type": ["string", "object", "array"]}},
    "required": ["detail"],
}

COMPONENTS: dict[str, Schema] = {
    "PhoneNumber": PHONE_NUMBER,
    "Call": CALL,
    "RateLimit": RATE_LIMIT,
    "CallWithRateLimit": CALL_WITH_RATE_LIMIT,
    "Transcript": TRANSCRIPT,
    "MediaItem": MEDIA_ITEM,
    "Text": TEXT,
    "Conversation": CONVERSATION,
    "ConversationUpdate": CONVERSATION_UPDATE,
    "IncomingCallAction": INCOMING_CALL_CONFIG,
    "Error": ERROR,
}


def list_of(name: str) -> Schema:
    return array(ref(name))


def component(name: str) -> Schema:
    if name not in COMPONENTS:
        raise KeyError(name)
    return ref(name)
