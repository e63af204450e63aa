"""The audio format an agent speaks, and the per-call converters to and from the caller.

The caller side is G.711 at 8 kHz (μ-law, or A-law from the trunk), or G.722,
which the media session decodes to PCM16 at 16 kHz before it gets here.
``mulaw8k`` is a pass-through for μ-law: its bytes go to the agent untouched
(A-law is transcoded by one ``bytes.translate``). The ``pcm16_*`` formats are
signed 16-bit little-endian mono at 8, 16 or 24 kHz: each call has one
persistent resampler per direction, so chunk edges never click and the stream
never drifts. A G.722 caller reaches a ``pcm16_16k`` agent untouched
(wideband end to end); the other formats get it through 8 kHz.
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


WIDEBAND_RATE = 16000  # G.722's audio, as the session hands it on


class CallerToAgent:
    """Caller frames → the agent's format (one instance per call).

    ``codec`` is the caller's: PCMU and PCMA frames are G.711 bytes; for G722
    the frames are already PCM16 at 16 kHz (the session decodes G.722 once).
    """

    __slots__ = ("_alaw", "_format", "_narrowband", "_resampler", "_wideband", "passthrough")

    def __init__(self, agent_format: AgentAudioFormat, *, codec: str = "PCMU") -> None:
        self._format = agent_format
        self._alaw = codec == "PCMA"
        self._wideband = codec == "G722"
        self._narrowband: StreamingResampler | None = None  # 16 kHz → 8 kHz, on the way
        if self._wideband:
            if agent_format.sample_rate == WIDEBAND_RATE:
                self._resampler: StreamingResampler | None = None
            else:  # the resampler's one side is 8 kHz: 16 kHz reaches other rates through it
                self._narrowband = StreamingResampler(WIDEBAND_RATE, 8000)
                self._resampler = (
                    None if agent_format.mulaw or agent_format.sample_rate == 8000
                    else StreamingResampler(8000, agent_format.sample_rate)
                )  # fmt: skip
        else:
            self._resampler = (
                None if agent_format.mulaw else StreamingResampler(8000, agent_format.sample_rate)
            )
        # μ-law in, μ-law out: ``convert`` returns its input
        self.passthrough = not self._wideband and not self._alaw and self._resampler is None

    def convert(self, payload: bytes | memoryview) -> bytes | memoryview:
        if self._wideband:
            return self._from_wideband(payload)
        if self._resampler is None:
            return bytes(payload).translate(ALAW_TO_ULAW) if self._alaw else payload
        pcm = alaw_to_pcm16(payload) if self._alaw else ulaw_to_pcm16(payload)
        return pcm if self._resampler.passthrough else self._resampler.process(pcm)

    def _from_wideband(self, pcm: bytes | memoryview) -> bytes | memoryview:
        if self._narrowband is None:
            return pcm  # a 16 kHz agent: as decoded
        narrow = self._narrowband.process(pcm)
        if self._format.mulaw:
            return pcm16_to_ulaw(narrow) if narrow else b""
        return narrow if self._resampler is None else self._resampler.process(narrow)


class AgentToCaller:
    """Agent audio of any chunk size → μ-law at 8 kHz for the playout (one per call)."""

    __slots__ = ("_resampler", "passthrough")

    def __init__(self, agent_format: AgentAudioFormat) -> None:
        self._resampler = (
            None if agent_format.mulaw else StreamingResampler(agent_format.sample_rate, 8000)
        )
        self.passthrough = self._resampler is None  # ``convert`` returns its input

    def convert(self, audio: bytes) -> bytes:
        if self._resampler is None:
            return audio
        pcm = self._resampler.process(audio)  # carries an odd trailing byte to the next chunk
        return pcm16_to_ulaw(pcm) if pcm else b""
