"""The Twilio Media Streams persona, sans I/O: what an agent written for Twilio expects.

Outbound: ``connected``, then ``start`` (``streamSid``, ``callSid``,
``accountSid``, ``tracks``, ``customParameters``, ``mediaFormat``), ``media``
with string ``chunk``/``timestamp``, ``dtmf``, ``mark`` and ``stop`` — every
message carries a string ``sequenceNumber`` counting all messages sent, and
``streamSid``. Inbound: ``media``, ``mark``, ``clear`` (and ``stop``, an
extension letting the agent hang up). Identifiers keep Twilio's shapes
(``MZ``/``CA``/``AC`` + 32 hex digits) derived from trunkline's own ids: the
``streamSid`` from the stream (a redialled agent gets a new one), the
``callSid`` from the call id (so the REST hang-up can name the call), the
``accountSid`` one-way from the organisation id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from typing import Any

from trunkline.agent.formats import AgentAudioFormat
from trunkline.agent.inkbox_protocol import (
    MAX_MEDIA_BYTES,
    MEDIA_FRAME_TAIL,
    AgentClear,
    AgentMark,
    AgentMedia,
    AgentMessage,
    AgentProtocolError,
    AgentStop,
    fast_media_payload,
    flat_media_error,
    load_frame,
)
from trunkline.speedups import encode_media_frame


def twilio_sid(prefix: str, source: str) -> str:
    """A Twilio-shaped identifier: two letters and 32 hex digits, stable for ``source``."""
    return prefix + hashlib.sha256(source.encode()).hexdigest()[:32]


def uuid_sid(prefix: str, identifier: str) -> str:
    """``prefix`` and the 32 hex digits of a UUID (trunkline's ids); other ids are hashed."""
    try:
        return prefix + uuid.UUID(identifier).hex
    except ValueError:
        return twilio_sid(prefix, identifier)


def account_sid_for(organization_id: str) -> str:
    """The ``accountSid`` the persona hands out for an organisation (one-way)."""
    return twilio_sid("AC", "account:" + organization_id)


def call_sid_for(call_id: str) -> str:
    """The ``callSid`` of a call: ``CA`` and the call id's 32 hex digits."""
    return uuid_sid("CA", call_id)


def call_id_from_sid(call_sid: str) -> str | None:
    """The call id a ``callSid`` names; None when it is not one trunkline hands out."""
    digits = call_sid[2:]
    if not call_sid.startswith("CA") or len(digits) != 32:
        return None
    if any(c not in "0123456789abcdef" for c in digits):
        return None
    return str(uuid.UUID(digits))


class TwilioPersona:
    """Frames for one stream in Twilio's format (one instance per call)."""

    __slots__ = ("_chunk", "_media_prefix", "_sequence", "_timestamp_ms", "call_sid",
                 "account_sid", "stream_sid")  # fmt: skip

    name = "twilio"

    def __init__(self, call_id: str, organization_id: str, stream_id: str) -> None:
        self.stream_sid = uuid_sid("MZ", stream_id)  # a new stream (a redial): a new sid
        self.call_sid = call_sid_for(call_id)
        self.account_sid = account_sid_for(organization_id)
        self._sequence = 0
        self._chunk = 0
        self._timestamp_ms = 0
        self._media_prefix = (
            '{"event":"media","streamSid":' + json.dumps(self.stream_sid)
        ).encode()

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    def _message(self, event: str, **fields: Any) -> str:
        body = {"event": event, "sequenceNumber": self._next(), **fields}
        body["streamSid"] = self.stream_sid
        return json.dumps(body, separators=(",", ":"))

    def opening(self, agent_format: AgentAudioFormat, custom: dict[str, str]) -> list[str]:
        connected = json.dumps(
            {"event": "connected", "protocol": "Call", "version": "1.0.0"}, separators=(",", ":")
        )
        start = self._message(
            "start",
            start={
                "streamSid": self.stream_sid,
                "accountSid": self.account_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": custom,
                "mediaFormat": agent_format.twilio_media_format(),
            },
        )
        return [connected, start]

    def media(self, payload: bytes | memoryview, duration_ms: int = 20) -> bytes:
        """A ``media`` frame as UTF-8 bytes (the payload's base64 written into the template)."""
        self._chunk += 1
        self._sequence += 1
        head = (
            b'%s,"sequenceNumber":"%d","media":{"track":"inbound","chunk":"%d","timestamp":"%d",'
            b'"payload":"' % (self._media_prefix, self._sequence, self._chunk, self._timestamp_ms)
        )
        self._timestamp_ms += duration_ms
        return encode_media_frame(head, payload, MEDIA_FRAME_TAIL)

    def dtmf(self, digit: str) -> str:
        return self._message("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    def mark(self, name: str) -> str:
        return self._message("mark", mark={"name": name})

    def stop(self, reason: str) -> str:
        return self._message(
            "stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid}
        )

    def parse(self, text: str) -> AgentMessage:
        return parse_twilio_agent_frame(text)

    media_payload = staticmethod(fast_media_payload)


def parse_twilio_agent_frame(text: str) -> AgentMessage:
    audio = fast_media_payload(text)
    if audio is not None:
        return AgentMedia(audio)
    return parse_twilio_agent_frame_fully(text)


def parse_twilio_agent_frame_fully(text: str) -> AgentMessage:
    """``parse_twilio_agent_frame`` without its fast path for media frames."""
    frame = load_frame(text)
    event = frame.get("event")
    if event == "media":
        media = frame.get("media")
        if not isinstance(media, dict) and "payload" in frame:
            raise flat_media_error("Twilio")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str) or len(payload) > MAX_MEDIA_BYTES * 2:
            raise AgentProtocolError(
                'media frame without media.payload: Twilio\'s shape is {"event":"media",'
                '"streamSid":...,"media":{"payload":"<base64>"}}',
                "bad_media",
            )
        try:
            return AgentMedia(base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            raise AgentProtocolError("media.payload is not base64", "bad_base64") from None
    if event == "mark":
        mark = frame.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str) or len(name) > 256:
            raise AgentProtocolError(
                "mark.name must be a string of at most 256 characters", "bad_mark"
            )
        return AgentMark(name)
    if event == "clear":
        return AgentClear()
    if event == "stop":
        return AgentStop("agent")
    raise AgentProtocolError(
        f"unknown event {str(event)[:40]!r}: the Twilio persona accepts media, mark, clear, stop",
        "unknown_event",
    )
