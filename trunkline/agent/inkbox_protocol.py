"""The Inkbox media-stream protocol, sans I/O: frames trunkline sends and parses.

Outbound ``media`` frames are built from a pre-split template and a base64
payload (no per-frame dict or JSON encoder), as UTF-8 bytes; an agent that
accepts ``X-Trunkline-Media-Frames: binary`` in its upgrade response gets the
caller's audio as binary WebSocket frames instead (``binary_media_accepted``). Inbound
``media`` frames of the usual shape are read without the JSON parser
(``fast_media_payload``); anything else is parsed in full. Inbound frames are parsed into
small message objects; anything malformed raises ``AgentProtocolError``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from trunkline.speedups import decode_media_payload, encode_media_frame

MAX_FRAME_CHARS = 1_048_576
MAX_MEDIA_BYTES = 256 * 1024
MULAW_FORMAT = {"encoding": "audio/x-mulaw", "sample_rate": 8000, "channels": 1}
MEDIA_FRAME_TAIL = b'"}}'  # closes the payload string, ``media`` and the frame
# trunkline's upgrade request offers binary media frames; the agent's 101 accepts them by
# answering with the same header and value (any other answer, or none: JSON ``media`` frames).
MEDIA_FRAMES_HEADER = "X-Trunkline-Media-Frames"
BINARY_MEDIA = "binary"


class AgentProtocolError(ValueError):
    """An agent frame trunkline cannot use (dropped and counted; the call goes on).

    ``reason`` is a short fixed label for the metric; the message says what
    was wrong for the agent's author.
    """

    def __init__(self, message: str, reason: str = "bad_field") -> None:
        super().__init__(message)
        self.reason = reason


def flat_media_error(persona: str) -> AgentProtocolError:
    """A ``media`` frame carrying ``payload`` at the top level, not inside ``media``."""
    return AgentProtocolError(
        f'media frame without media.payload: a flat {{"event":"media","payload":...}} is not '
        f'{persona}\'s shape; send {{"event":"media","media":{{"payload":...}}}}',
        "flat_media",
    )


# -- trunkline -> agent -------------------------------------------------------------


def binary_media_accepted(response_headers: dict[str, str]) -> bool:
    """The agent's 101 (header names lower-cased) accepted binary media frames."""
    value = response_headers.get(MEDIA_FRAMES_HEADER.lower(), "")
    return value.strip().lower() == BINARY_MEDIA


def start_frame(stream_id: str, call_id: str, media_format: dict[str, Any] | None = None) -> str:
    return json.dumps(
        {
            "event": "start",
            "stream_id": stream_id,
            "start": {
                "call_id": call_id,
                "call_control_id": call_id,
                "media_format": media_format or MULAW_FORMAT,
            },
        },
        separators=(",", ":"),
    )


class MediaFrameEncoder:
    """Builds ``media`` frames for one stream: chunk numbers and timestamps advance per frame.

    A frame is its JSON text as UTF-8 bytes, ready for the socket: the head up
    to the payload's opening quote, then the payload in base64 written straight
    after it (``speedups.encode_media_frame``: one allocation), then the tail.
    """

    __slots__ = ("_chunk", "_prefix", "_timestamp_ms")

    def __init__(self, stream_id: str) -> None:
        self._prefix = (
            '{"event":"media","stream_id":' + json.dumps(stream_id) + ',"media":{"track":"inbound"'
        ).encode()
        self._chunk = 0
        self._timestamp_ms = 0

    def encode(self, payload: bytes | memoryview, duration_ms: int = 20) -> bytes:
        self._chunk += 1
        head = b'%s,"chunk":%d,"timestamp":%d,"payload":"' % (
            self._prefix,
            self._chunk,
            self._timestamp_ms,
        )
        self._timestamp_ms += duration_ms
        return encode_media_frame(head, payload, MEDIA_FRAME_TAIL)


def dtmf_frame(digit: str) -> str:
    return '{"event":"dtmf","dtmf":{"digit":' + json.dumps(digit) + "}}"


def mark_frame(name: str) -> str:
    return '{"event":"mark","mark":{"name":' + json.dumps(name) + "}}"


def transcript_frame(text: str, *, is_final: bool, turn_id: int) -> str:
    """Caller speech as text (speech-to-text mode): partials, then one final per turn."""
    return json.dumps(
        {"event": "transcript", "text": text, "is_final": is_final, "turn_id": turn_id},
        separators=(",", ":"),
    )


def barge_in_frame(text: str, *, tts_interrupted: bool, turn_id: int) -> str:
    """The caller spoke over the agent; what was queued for them has been dropped."""
    return json.dumps(
        {
            "event": "barge_in",
            "trigger": "caller_speech",
            "text": text,
            "tts_interrupted": tts_interrupted,
            "turn_id": turn_id,
        },
        separators=(",", ":"),
    )


def stop_frame(reason: str) -> str:
    return '{"event":"stop","reason":' + json.dumps(reason) + "}"


# -- agent -> trunkline -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentMedia:
    payload: bytes


@dataclass(frozen=True, slots=True)
class AgentMark:
    name: str


@dataclass(frozen=True, slots=True)
class AgentClear:
    pass


@dataclass(frozen=True, slots=True)
class AgentAudioDone:
    pass


@dataclass(frozen=True, slots=True)
class AgentStop:
    reason: str | None


@dataclass(frozen=True, slots=True)
class AgentTranscript:
    party: str
    text: str
    is_final: bool


@dataclass(frozen=True, slots=True)
class AgentText:
    delta: str
    done: bool


AgentMessage = (
    AgentMedia | AgentMark | AgentClear | AgentAudioDone | AgentStop | AgentTranscript | AgentText
)


def _object(value: Any, name: str, reason: str = "bad_field") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AgentProtocolError(f"{name} must be an object", reason)
    return value


def _string(value: Any, name: str, limit: int = 10_000, reason: str = "bad_field") -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise AgentProtocolError(f"{name} must be a string of at most {limit} characters", reason)
    return value


def load_frame(text: str) -> dict[str, Any]:
    """A text frame as a JSON object, within the size bound (both agent protocols)."""
    if len(text) > MAX_FRAME_CHARS:
        raise AgentProtocolError("frame too large", "too_large")
    try:
        frame = json.loads(text)
    except ValueError:
        raise AgentProtocolError("frame is not JSON", "not_json") from None
    except RecursionError:  # "[[[[…": nested deeper than the decoder goes
        raise AgentProtocolError("frame is nested too deeply", "too_deep") from None
    if not isinstance(frame, dict):
        raise AgentProtocolError("frame must be a JSON object", "not_object")
    return frame


def fast_media_payload(text: str) -> bytes | None:
    """A well-formed ``media`` frame's audio, read without the JSON parser; None otherwise.

    None means only "not read here": the caller parses the frame in full,
    which gives the same audio, or the same error, the slow way.
    """
    if len(text) > MAX_FRAME_CHARS:
        return None
    return decode_media_payload(text, MAX_MEDIA_BYTES * 2)


def parse_agent_frame(text: str) -> AgentMessage:
    audio = fast_media_payload(text)
    if audio is not None:
        return AgentMedia(audio)
    return parse_agent_frame_fully(text)


def parse_agent_frame_fully(text: str) -> AgentMessage:
    """``parse_agent_frame`` without its fast path for media frames."""
    frame = load_frame(text)
    event = frame.get("event")
    if event == "media":
        media = frame.get("media")
        if not isinstance(media, dict) and "payload" in frame:
            raise flat_media_error("the Inkbox media stream")
        media = _object(media, "media", "bad_media")
        payload = _string(media.get("payload"), "media.payload", MAX_MEDIA_BYTES * 2, "bad_media")
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise AgentProtocolError("media.payload is not base64", "bad_base64") from None
        return AgentMedia(audio)
    if event == "mark":
        mark = _object(frame.get("mark"), "mark", "bad_mark")
        return AgentMark(_string(mark.get("name"), "mark.name", 256, "bad_mark"))
    if event == "clear":
        return AgentClear()
    if event == "audio_done":
        return AgentAudioDone()
    if event == "stop":
        reason = frame.get("reason")
        return AgentStop(_string(reason, "reason", 256) if reason is not None else None)
    if event == "transcript":
        party = frame.get("party", "local")
        if party not in ("local", "remote"):
            raise AgentProtocolError("transcript.party must be local or remote", "bad_field")
        return AgentTranscript(
            party, _string(frame.get("text"), "text"), bool(frame.get("is_final", True))
        )
    if event == "text":
        delta = frame.get("delta", "")
        return AgentText(_string(delta, "delta"), bool(frame.get("done", False)))
    raise AgentProtocolError(
        f"unknown event {str(event)[:40]!r}: the Inkbox media stream accepts media, text, "
        "mark, clear, audio_done, transcript, stop",
        "unknown_event",
    )
