"""What a media session is built from, per call, and what it reports back.

``MediaPlan`` is the call's media options, fixed when the session is built
(the number's agent protocol and audio format, recording, the Twilio
persona's custom parameters). ``MediaEvents`` is what the session tells the
call that owns it: the agent stopped or stopped reading, the agent sent a
transcript, a transcript segment is to be stored, the recording is done, the
session's media failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from trunkline.agent.formats import AGENT_FORMATS, AgentAudioFormat
from trunkline.media.speech_work import Party


@dataclass(frozen=True, slots=True)
class MediaPlan:
    call_id: str
    caller_codec: str  # what the caller leg carries: PCMU, PCMA or G722
    organization_id: str = ""
    agent_protocol: str = "inkbox"
    agent_format: AgentAudioFormat = AGENT_FORMATS["mulaw8k"]
    record: bool = False
    custom_parameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Inkbox's speech modes default on; a number that asks for PCM audio wants audio.
    speech_by_default: bool = True


class MediaEvents(Protocol):
    """What a session reports to its call."""

    def agent_stopped(self, reason: str | None) -> None:
        """The agent sent ``stop``: the call ends."""
        ...

    def agent_overflowed(self) -> None:
        """The agent stopped reading its socket: the call ends."""
        ...

    def agent_transcript(self, party: str, text: str) -> None:
        """A final ``transcript`` frame from the agent, to store."""
        ...

    def store_segment(self, party: Party, text: str, ts_ms: int) -> Awaitable[None]:
        """Store (and announce) one transcript segment the call's speech produced."""
        ...

    def recording_finished(self, call_id: str, path: Path) -> None:
        """The call's recording is complete at ``path`` (called on the writer's thread)."""
        ...

    def media_failed(self) -> None:
        """The session's frame tick raised (and was stopped): the call ends."""
        ...
