"""Real speech for tests: sentences spoken by the bundled piper voice, as a phone carries them."""

from __future__ import annotations

from functools import cache

from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.speech.synthesizer import PiperSynthesizer
from trunkline.speech.transcriber import WhisperTranscriber
from trunkline.speech.wer import word_error_rate

__all__ = ["frames", "spoken", "transcribe_ulaw", "whisper", "word_error_rate"]

FRAME = 160  # 20 ms of μ-law at 8 kHz
SILENCE = b"\xff" * FRAME


@cache
def voice() -> PiperSynthesizer:
    # Without sampling noise: a test hears the same audio on every run.
    return PiperSynthesizer(deterministic=True)


@cache
def whisper() -> WhisperTranscriber:
    return WhisperTranscriber(threads=1)


@cache
def spoken(text: str) -> bytes:
    """``text`` as μ-law 8 kHz (what a caller's phone sends)."""
    return b"".join(voice().synthesize(text))


def frames(ulaw: bytes, *, lead_ms: int = 0, tail_ms: int = 0) -> list[bytes]:
    """20 ms frames, with silence before and after."""
    padded = ulaw + b"\xff" * (-len(ulaw) % FRAME)
    body = [padded[i : i + FRAME] for i in range(0, len(padded), FRAME)]
    return [SILENCE] * (lead_ms // 20) + body + [SILENCE] * (tail_ms // 20)


def transcribe_ulaw(ulaw: bytes) -> str:
    return whisper().transcribe(ulaw_to_pcm16(ulaw))
