"""Which wire protocol an agent speaks (a per-number option), behind one interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from trunkline.agent.formats import AgentAudioFormat
from trunkline.agent.inkbox_protocol import (
    AgentMessage,
    MediaFrameEncoder,
    dtmf_frame,
    fast_media_payload,
    mark_frame,
    parse_agent_frame,
    start_frame,
    stop_frame,
)
from trunkline.agent.twilio_protocol import TwilioPersona


class AgentPersona(Protocol):
    """Encodes what trunkline tells the agent and parses what the agent says."""

    name: str  # the number's ``agent_protocol``

    def opening(self, agent_format: AgentAudioFormat, custom: dict[str, str]) -> list[str]:
        """The frames that open the stream (``start``, and ``connected`` for Twilio)."""
        ...

    def media(self, payload: bytes | memoryview, duration_ms: int = 20) -> bytes:
        """A ``media`` frame: JSON text, already UTF-8 (it goes to the socket as it is)."""
        ...

    def dtmf(self, digit: str) -> str: ...

    def mark(self, name: str) -> str: ...

    def stop(self, reason: str) -> str: ...

    def parse(self, text: str) -> AgentMessage: ...

    @property
    def media_payload(self) -> Callable[[str], bytes | None]:
        """A ``media`` frame's audio when the frame has the usual shape, read without
        parsing it; else None, and ``parse`` reads the frame (the same audio, or its error)."""
        ...


class InkboxPersona:
    """The Inkbox media-stream protocol (the default)."""

    __slots__ = ("call_id", "media", "stream_id")
    name = "inkbox"

    def __init__(self, call_id: str, stream_id: str) -> None:
        self.call_id = call_id
        self.stream_id = stream_id
        self.media = MediaFrameEncoder(stream_id).encode  # a ``media`` frame, one call deep

    def opening(self, agent_format: AgentAudioFormat, custom: dict[str, str]) -> list[str]:
        return [start_frame(self.stream_id, self.call_id, agent_format.inkbox_media_format())]

    def dtmf(self, digit: str) -> str:
        return dtmf_frame(digit)

    def mark(self, name: str) -> str:
        return mark_frame(name)

    def stop(self, reason: str) -> str:
        return stop_frame(reason)

    def parse(self, text: str) -> AgentMessage:
        return parse_agent_frame(text)

    media_payload = staticmethod(fast_media_payload)


def persona_for(protocol: str, call_id: str, organization_id: str, stream_id: str) -> AgentPersona:
    if protocol == "twilio":
        return TwilioPersona(call_id, organization_id, stream_id)
    return InkboxPersona(call_id, stream_id)
