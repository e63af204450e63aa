"""Storage records to the API's JSON objects (shapes in ``shapes.py``).

Timestamps are ISO 8601 with their UTC offset. Secrets never leave: a
registered number's trunk password shows only as ``auth_password_set``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from trunkline.storage.models import (
    Call,
    Conversation,
    IncomingCallConfig,
    PhoneNumber,
    TranscriptSegment,
)

MediaUrl = Callable[[str], str]  # blob key -> presigned URL


def iso(value: datetime) -> str:
    return value.isoformat()


def iso_or_none(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def phone_number(number: PhoneNumber) -> dict[str, Any]:
    routing = number.inbound_routing
    return {
        "id": number.id,
        "number": number.number,
        "type": number.type,
        "status": number.status,
        "incoming_call_action": number.incoming_call_action,
        "client_websocket_url": number.client_websocket_url,
        "incoming_call_webhook_url": number.incoming_call_webhook_url,
        "agent_identity_id": number.agent_identity_id,
        "state": number.state,
        "country": number.country,
        "sms_status": number.sms_status,
        "filter_mode": number.filter_mode,
        "agent_protocol": number.agent_protocol,
        "agent_audio": number.agent_audio,
        "recording_enabled": number.recording_enabled,
        "provider": number.provider,
        "friendly_name": number.friendly_name,
        "provider_config": None
        if number.provider is None
        else {
            "trunk_address": number.trunk_address,
            "auth_username": number.auth_username,
            "auth_password_set": number.auth_password_encrypted is not None,
            "register": number.sip_register,
            "registrar": number.registrar,
        },
        "registration": registration(number),
        "inbound_routing": None
        if routing is None
        else {
            "agent_id": routing.agent_id,
            "fallback": None
            if routing.fallback_agent_id is None
            else {"agent_id": routing.fallback_agent_id},
            "voicemail_message": routing.voicemail_message,
        },
        "created_at": iso(number.created_at),
        "updated_at": iso(number.updated_at),
    }


def registration(number: PhoneNumber) -> dict[str, Any] | None:
    """The number's SIP registration status, when it keeps one."""
    if not number.sip_register or number.status == "released":
        return None
    return {
        "state": number.registration_state or "pending",
        "expires_at": iso_or_none(number.registration_expires_at),
        "last_error": number.registration_error,
    }


def call(record: Call, media_url: MediaUrl | None = None) -> dict[str, Any]:
    recording = record.recording_key
    return {
        "id": record.id,
        "local_phone_number": record.local_phone_number,
        "remote_phone_number": record.remote_phone_number,
        "direction": record.direction,
        "status": record.status,
        "client_websocket_url": record.client_websocket_url,
        "use_inkbox_tts": record.use_inkbox_tts,
        "use_inkbox_stt": record.use_inkbox_stt,
        "hangup_reason": record.hangup_reason,
        # Why a failed call failed (the SIP status line, "dial failed: …"); null otherwise.
        "failure_detail": record.failure_detail if record.status == "failed" else None,
        "started_at": iso_or_none(record.started_at),
        "ended_at": iso_or_none(record.ended_at),
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "recording_url": media_url(recording) if recording and media_url else None,
    }


def transcript(segment: TranscriptSegment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "call_id": segment.call_id,
        "seq": segment.seq,
        "ts_ms": segment.ts_ms,
        "party": segment.party,
        "text": segment.text,
        "created_at": iso(segment.created_at),
    }


def conversation(summary: Conversation) -> dict[str, Any]:
    return {
        "remote_phone_number": summary.remote_phone_number,
        "latest_text": summary.latest_text,
        "latest_direction": summary.latest_direction,
        "latest_type": summary.latest_type,
        "latest_message_at": iso(summary.latest_message_at),
        "unread_count": summary.unread_count,
        "total_count": summary.total_count,
    }


def incoming_call_config(config: IncomingCallConfig) -> dict[str, Any]:
    return {
        "agent_identity_id": config.agent_identity_id,
        "incoming_call_action": config.incoming_call_action,
        "client_websocket_url": config.client_websocket_url,
        "incoming_call_webhook_url": config.incoming_call_webhook_url,
    }
