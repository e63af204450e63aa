"""Carrier messaging webhooks, sans I/O: signature checks and payload parsing.

Telnyx signs ``"{telnyx-timestamp}|{raw body}"`` with Ed25519
(``telnyx-signature-ed25519``, base64) and sends JSON ``message.received`` /
``message.finalized`` events. Twilio posts form fields and signs the full URL
followed by every field name and value, sorted by name, with HMAC-SHA1 under
the account's auth token (``X-Twilio-Signature``, base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TELNYX_SIGNATURE_HEADER = "telnyx-signature-ed25519"
TELNYX_TIMESTAMP_HEADER = "telnyx-timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_MEDIA_ITEMS = 10


class SignatureError(Exception):
    """The request is not provably from the carrier (answer 403, store nothing)."""


class PayloadError(Exception):
    """The request is signed but not a message trunkline understands (answer 422)."""


@dataclass(frozen=True, slots=True)
class MediaReference:
    url: str
    content_type: str | None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    carrier: str
    carrier_message_id: str
    from_number: str
    to_number: str
    text: str | None
    media: Sequence[MediaReference] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    carrier_message_id: str
    from_number: str
    status: str


def telnyx_public_key(encoded: str) -> Ed25519PublicKey:
    """The configured Telnyx public key (base64 of the 32 raw bytes)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("TRUNKLINE_TELNYX_PUBLIC_KEY must be base64 of a 32-byte key") from exc


def verify_telnyx(
    headers: Mapping[str, str], body: bytes, key: Ed25519PublicKey, now: float
) -> None:
    signature = headers.get(TELNYX_SIGNATURE_HEADER, "")
    stamp = headers.get(TELNYX_TIMESTAMP_HEADER, "")
    if not signature or not stamp.isdigit():
        raise SignatureError("missing Telnyx signature headers")
    if abs(now - int(stamp)) > SIGNATURE_TOLERANCE_SECONDS:
        raise SignatureError("Telnyx timestamp outside the allowed window (replay?)")
    try:
        key.verify(base64.b64decode(signature, validate=True), stamp.encode() + b"|" + body)
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError("Telnyx signature does not match") from None


def _phone(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("phone_number")
    if not isinstance(value, str) or not value:
        raise PayloadError("missing phone number")
    return value


def parse_telnyx(body: bytes) -> InboundMessage | DeliveryReport | None:
    """A message, a delivery report, or None for event types trunkline ignores."""
    try:
        document = json.loads(body)
        data = document["data"]
        event_type = data["event_type"]
        payload = data["payload"]
    except (ValueError, KeyError, TypeError):
        raise PayloadError("not a Telnyx messaging event") from None
    if not isinstance(payload, dict):
        raise PayloadError("payload must be an object")
    message_id = payload.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise PayloadError("payload.id is required")
    recipients = payload.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise PayloadError("payload.to must list the recipient")
    if event_type in ("message.sent", "message.finalized"):
        status = recipients[0].get("status") if isinstance(recipients[0], dict) else None
        return DeliveryReport(message_id, _phone(payload.get("from")), str(status or "unknown"))
    if event_type != "message.received":
        return None
    text = payload.get("text")
    if text is not None and not isinstance(text, str):
        raise PayloadError("payload.text must be a string")
    media_items = payload.get("media") or []
    if not isinstance(media_items, list) or len(media_items) > MAX_MEDIA_ITEMS:
        raise PayloadError(f"payload.media must be a list of at most {MAX_MEDIA_ITEMS}")
    media = []
    for item in media_items:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise PayloadError("each media item needs a url")
        media.append(MediaReference(item["url"], item.get("content_type")))
    return InboundMessage(
        "telnyx",
        message_id,
        _phone(payload.get("from")),
        _phone(recipients[0]),
        text or None,
        tuple(media),
    )


def twilio_signature(auth_token: str, url: str, fields: Sequence[tuple[str, str]]) -> str:
    message = url + "".join(name + value for name, value in sorted(fields))
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(
    headers: Mapping[str, str], url: str, fields: Sequence[tuple[str, str]], auth_token: str
) -> None:
    presented = headers.get(TWILIO_SIGNATURE_HEADER, "")
    if not presented:
        raise SignatureError("missing X-Twilio-Signature")
    expected = twilio_signature(auth_token, url, fields)
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise SignatureError("Twilio signature does not match")


def parse_twilio(fields: Sequence[tuple[str, str]]) -> InboundMessage | DeliveryReport:
    values = dict(fields)
    sid = values.get("MessageSid") or values.get("SmsSid") or ""
    if not sid:
        raise PayloadError("MessageSid is required")
    status = values.get("MessageStatus") or values.get("SmsStatus")
    if status and status != "received" and "Body" not in values and "NumMedia" not in values:
        return DeliveryReport(sid, values.get("From", ""), status)
    try:
        count = int(values.get("NumMedia", "0") or "0")
    except ValueError:
        raise PayloadError("NumMedia must be a number") from None
    if not 0 <= count <= MAX_MEDIA_ITEMS:
        raise PayloadError(f"NumMedia must be 0-{MAX_MEDIA_ITEMS}")
    media = []
    for index in range(count):
        url = values.get(f"MediaUrl{index}")
        if not url:
            raise PayloadError(f"MediaUrl{index} is missing")
        media.append(MediaReference(url, values.get(f"MediaContentType{index}")))
    sender, recipient = values.get("From", ""), values.get("To", "")
    if not sender or not recipient:
        raise PayloadError("From and To are required")
    return InboundMessage(
        "twilio", sid, sender, recipient, values.get("Body") or None, tuple(media)
    )
