"""Carrier media-stream WebSockets (Twilio and Telnyx formats), sans I/O.

A carrier that streams a call to trunkline sends ``connected``, ``start``,
``media`` (base64 RTP payloads, no headers), ``dtmf``, ``mark`` and ``stop``
as JSON text frames, and accepts ``media``, ``mark`` and ``clear``. This
module turns those frames into events and the caller's audio into μ-law at
8 kHz (PCMU as is; PCMA by one table; L16 — network byte order, as in RTP —
decoded and resampled), and builds the frames trunkline sends back in the
carrier's own encoding. Telnyx does not guarantee frame order: ``Reorder``
puts media back in ``sequence_number`` order within a bounded window.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from trunkline.codecs.g711 import (
    ALAW_TO_ULAW,
    ULAW_TO_ALAW,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from trunkline.codecs.resample import SUPPORTED_RATES, StreamingResampler

Dialect = Literal["twilio", "telnyx"]
MAX_FRAME_CHARS = 1_048_576
REORDER_WINDOW = 16  # frames (320 ms) held while waiting for a missing one


class CarrierStreamError(ValueError):
    """A carrier frame trunkline cannot use (dropped and counted)."""


@dataclass(frozen=True, slots=True)
class StreamStart:
    stream_id: str
    carrier_call_id: str
    to_number: str | None
    from_number: str | None
    encoding: str  # PCMU | PCMA | L16
    sample_rate: int
    custom: dict[str, str] = field(default_factory=dict)
    sequence: int | None = None  # Telnyx numbers the start frame too: media follows it


@dataclass(frozen=True, slots=True)
class StreamMedia:
    payload: bytes
    sequence: int | None


@dataclass(frozen=True, slots=True)
class StreamDtmf:
    digit: str
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class StreamStop:
    pass


@dataclass(frozen=True, slots=True)
class StreamOther:
    """``connected``, ``mark`` echoes, ``error`` and anything else that needs no action."""

    event: str
    sequence: int | None = None


StreamEvent = StreamStart | StreamMedia | StreamDtmf | StreamStop | StreamOther

_ENCODINGS = {"audio/x-mulaw": "PCMU", "pcmu": "PCMU", "pcma": "PCMA", "l16": "L16"}


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CarrierStreamError(f"{name} must be an object")
    return value


def _text(value: Any, name: str, limit: int = 256) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise CarrierStreamError(f"{name} must be a non-empty string")
    return value


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def _sequence(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _custom(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k)[:64]: str(v)[:256] for k, v in list(value.items())[:32]}


def parse_carrier_frame(text: str, dialect: Dialect) -> StreamEvent:
    if len(text) > MAX_FRAME_CHARS:
        raise CarrierStreamError("frame too large")
    try:
        frame = _object(json.loads(text), "frame")
    except ValueError:
        raise CarrierStreamError("frame is not JSON") from None
    except RecursionError:  # "[[[[…": nested deeper than the decoder goes
        raise CarrierStreamError("frame is nested too deeply") from None
    event = frame.get("event")
    # Telnyx numbers every frame and may deliver them out of order; Twilio's stream is ordered.
    sequence = _sequence(frame.get("sequence_number")) if dialect == "telnyx" else None
    if event == "media":
        media = _object(frame.get("media"), "media")
        if media.get("track") not in (None, "inbound", "inbound_track"):
            return StreamOther("media:" + str(media.get("track"))[:20], sequence)
        try:
            payload = base64.b64decode(
                _text(media.get("payload"), "media.payload", 200_000), validate=True
            )
        except (binascii.Error, ValueError):
            raise CarrierStreamError("media.payload is not base64") from None
        return StreamMedia(payload, sequence)
    if event == "start":
        return _start(frame, dialect, sequence)
    if event == "dtmf":
        digit = _object(frame.get("dtmf"), "dtmf").get("digit")
        if not isinstance(digit, str) or len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise CarrierStreamError("dtmf.digit must be one DTMF key")
        return StreamDtmf(digit, sequence)
    if event == "stop":
        return StreamStop()
    if isinstance(event, str) and len(event) <= 40:
        return StreamOther(event, sequence)
    raise CarrierStreamError("frame has no event")


def _start(frame: dict[str, Any], dialect: Dialect, sequence: int | None) -> StreamStart:
    start = _object(frame.get("start"), "start")
    if dialect == "twilio":
        media_format = _object(start.get("mediaFormat"), "start.mediaFormat")
        custom = _custom(start.get("customParameters"))
        stream_id = _text(start.get("streamSid") or frame.get("streamSid"), "start.streamSid")
        call_id = _text(start.get("callSid"), "start.callSid")
        to_number, from_number = custom.get("to"), custom.get("from")
        rate = media_format.get("sampleRate", 8000)
    else:
        media_format = _object(start.get("media_format"), "start.media_format")
        custom = _custom(start.get("custom_parameters"))
        stream_id = _text(frame.get("stream_id"), "stream_id")
        call_id = _text(start.get("call_control_id"), "start.call_control_id")
        to_number, from_number = _optional_text(start.get("to")), _optional_text(start.get("from"))
        rate = media_format.get("sample_rate", 8000)
    encoding = _ENCODINGS.get(str(media_format.get("encoding", "")).lower())
    if encoding is None:
        raise CarrierStreamError("media format must be PCMU, PCMA or L16")
    if (
        not isinstance(rate, int)
        or rate not in SUPPORTED_RATES
        or (encoding != "L16" and rate != 8000)
    ):
        raise CarrierStreamError("unsupported sample rate")
    return StreamStart(stream_id, call_id, to_number, from_number, encoding, rate, custom, sequence)


class CarrierAudio:
    """The caller's audio in the carrier's encoding ⇄ μ-law at 8 kHz (one per call)."""

    __slots__ = ("_down", "_up", "encoding")

    def __init__(self, encoding: str, sample_rate: int) -> None:
        self.encoding = encoding
        linear = encoding == "L16"
        self._down = StreamingResampler(sample_rate, 8000) if linear else None
        self._up = StreamingResampler(8000, sample_rate) if linear else None

    def to_mulaw(self, payload: bytes) -> bytes:
        if self.encoding == "PCMU":
            return payload
        if self.encoding == "PCMA":
            return payload.translate(ALAW_TO_ULAW)
        assert self._down is not None
        little = _swap16(payload)
        pcm = little if self._down.passthrough else self._down.process(little)
        return pcm16_to_ulaw(pcm) if pcm else b""

    def from_mulaw(self, frame: bytes) -> bytes:
        if self.encoding == "PCMU":
            return frame
        if self.encoding == "PCMA":
            return frame.translate(ULAW_TO_ALAW)
        assert self._up is not None
        pcm = ulaw_to_pcm16(frame)
        return _swap16(pcm if self._up.passthrough else self._up.process(pcm))


def _swap16(data: bytes) -> bytes:
    """Network byte order (RTP L16) ⇄ little-endian PCM16; an odd last byte is dropped."""
    even = len(data) - len(data) % 2
    return np.frombuffer(data, dtype=np.uint16, count=even // 2).byteswap().tobytes()


def media_frame(dialect: Dialect, stream_id: str, payload: bytes) -> str:
    """Audio trunkline sends back to the carrier for the caller to hear."""
    encoded = base64.b64encode(payload).decode("ascii")
    if dialect == "twilio":
        return (
            '{"event":"media","streamSid":'
            + json.dumps(stream_id)
            + ',"media":{"payload":"'
            + encoded
            + '"}}'
        )
    return '{"event":"media","media":{"payload":"' + encoded + '"}}'


class Reorder:
    """Media back in ``sequence_number`` order, holding at most ``window`` early frames.

    Every numbered frame takes its place in the order (a DTMF or mark frame is a
    slot with no audio), so non-media frames never look like gaps. A frame
    older than the next expected one is late and dropped; when the window is
    full the gap is given up on and delivery resumes from the oldest held frame.
    """

    __slots__ = ("_held", "_next", "dropped_late", "gaps", "window")

    def __init__(self, window: int = REORDER_WINDOW, after: int | None = None) -> None:
        self.window = window
        self._next: int | None = None if after is None else after + 1
        self._held: dict[int, bytes | None] = {}
        self.dropped_late = 0
        self.gaps = 0

    def push(self, sequence: int | None, payload: bytes | None) -> list[bytes]:
        """Audio now deliverable in order (``payload`` None: a numbered non-media frame)."""
        if sequence is None:
            return [] if payload is None else [payload]
        if self._next is None:
            self._next = sequence
        if sequence < self._next or sequence in self._held:
            if payload is not None:
                self.dropped_late += 1
            return []
        self._held[sequence] = payload
        if sequence != self._next and len(self._held) > self.window:
            self.gaps += 1
            self._next = min(self._held)
        ready: list[bytes] = []
        while self._next in self._held:
            audio = self._held.pop(self._next)
            if audio is not None:
                ready.append(audio)
            self._next += 1
        return ready
