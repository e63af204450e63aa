"""The audio format an agent speaks, and the per-call converters to and from the caller.

The caller side is always G.711 at 8 kHz (μ-law, or A-law from the trunk).
``mulaw8k`` is a pass-through: μ-law bytes go to the agent untouched (A-law is
transcoded by one ``bytes.translate``). The ``pcm16_*`` formats are signed
16-bit little-endian mono at 8, 16 or 24 kHz: each call has one persistent
resampler per direction, so chunk edges never click and the stream never
drifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trunkline.codecs.g711 import (
    ALAW_TO_ULAW,
    alaw_to_pcm16,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from trunkline.codecs.resample import StreamingResampler


@dataclass(frozen=True, slots=True)
class AgentAudioFormat:
    name: str
    sample_rate: int
    mulaw: bool

    @property
    def bytes_per_20ms(self) -> int:
        return 160 if self.mulaw else self.sample_rate // 50 * 2

    def inkbox_media_format(self) -> dict[str, Any]:
        if self.mulaw:
            return {"encoding": "audio/x-mulaw", "sample_rate": 8000, "channels": 1}
        return {
            "encoding": "audio/pcm",
            "sample_rate": self.sample_rate,
            "channels": 1,
            "sample_format": "s16le",
        }

    def twilio_media_format(self) -> dict[str, Any]:
        if self.mulaw:
            return {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        return {"encoding": "audio/x-l16le", "sampleRate": self.sample_rate, "channels": 1}


AGENT_FORMATS: dict[str, AgentAudioFormat] = {
    "mulaw8k": AgentAudioFormat("mulaw8k", 8000, True),
    "pcm16_8k": AgentAudioFormat("pcm16_8k", 8000, False),
    "pcm16_16k": AgentAudioFormat("pcm16_16k", 16000, False),
    "pcm16_24k": AgentAudioFormat("pcm16_24k", 24000, False),
}


class CallerToAgent:
    """Caller G.711 frames → the agent's format (one instance per call)."""

    __slots__ = ("_alaw", "_format", "_resampler")

    def __init__(self, agent_format: AgentAudioFormat, *, alaw: bool) -> None:
        self._format = agent_format
        self._alaw = alaw
        self._resampler = (
            None if agent_format.mulaw else StreamingResampler(8000, agent_format.sample_rate)
        )

    def convert(self, payload: bytes | memoryview) -> bytes | memoryview:
        if self._resampler is None:
            return bytes(payload).translate(ALAW_TO_ULAW) if self._alaw else payload
        pcm = alaw_to_pcm16(payload) if self._alaw else ulaw_to_pcm16(payload)
        return pcm if self._resampler.passthrough else self._resampler.process(pcm)


class AgentToCaller:
    """Agent audio of any chunk size → μ-law at 8 kHz for the playout (one per call)."""

    __slots__ = ("_resampler",)

    def __init__(self, agent_format: AgentAudioFormat) -> None:
        self._resampler = (
            None if agent_format.mulaw else StreamingResampler(agent_format.sample_rate, 8000)
        )

    def convert(self, audio: bytes) -> bytes:
        if self._resampler is None:
            return audio
        pcm = self._resampler.process(audio)  # carries an odd trailing byte to the next chunk
        return pcm16_to_ulaw(pcm) if pcm else b""
