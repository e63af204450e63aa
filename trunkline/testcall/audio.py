"""The test caller's audio: WAV files in and out, and the marker that times the round trip.

Audio on the wire is G.711 mu-law at 8 kHz in 20 ms frames (160 bytes). The
marker is a short burst of a 1400 Hz tone; a received frame carries it when
most of the frame's energy sits at that frequency (one DFT bin per frame), so silence, comfort noise and speech do not match.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from trunkline.codecs.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from trunkline.codecs.resample import SUPPORTED_RATES, StreamingResampler

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_BYTES = FRAME_SAMPLES  # one mu-law byte per sample
ULAW_SILENCE = b"\xff" * FRAME_BYTES
MARKER_HZ = 1400.0
MARKER_FRAMES = 3
MARKER_AMPLITUDE = 0.3  # of full scale, about -10 dBFS
MARKER_MIN_RMS = 800.0  # PCM16 units: quieter frames are not the marker
MARKER_MIN_SHARE = 0.6  # share of a frame's energy at MARKER_HZ
MAX_PLAY_SECONDS = 600


class AudioFileError(ValueError):
    """A WAV file the caller cannot play; the message says why."""


def marker_frames() -> list[bytes]:
    """The marker burst: MARKER_FRAMES mu-law frames of a continuous MARKER_HZ tone."""
    samples = np.arange(MARKER_FRAMES * FRAME_SAMPLES)
    tone = MARKER_AMPLITUDE * 32767 * np.sin(2 * np.pi * MARKER_HZ * samples / SAMPLE_RATE)
    codes = pcm16_to_ulaw(tone.astype("<i2").tobytes())
    return [codes[i : i + FRAME_BYTES] for i in range(0, len(codes), FRAME_BYTES)]


_MARKER_PROBE = np.exp(-2j * np.pi * MARKER_HZ * np.arange(FRAME_SAMPLES) / SAMPLE_RATE)


def _share_at_marker(samples: npt.NDArray[np.float64]) -> float:
    """The share of the frame's energy at MARKER_HZ: about 1 for the tone, near 0 otherwise."""
    energy = float(np.dot(samples, samples))
    if energy == 0:
        return 0.0
    component = np.dot(samples, _MARKER_PROBE[: samples.size])
    return float(2 * abs(component) ** 2 / (samples.size * energy))


def carries_marker(frame: bytes | memoryview) -> bool:
    """Whether this mu-law frame is (mostly) the marker tone."""
    samples = np.frombuffer(ulaw_to_pcm16(frame), dtype="<i2").astype(np.float64)
    if samples.size == 0 or np.sqrt(np.mean(samples * samples)) < MARKER_MIN_RMS:
        return False
    return _share_at_marker(samples) >= MARKER_MIN_SHARE


def load_wav_frames(path: Path) -> list[bytes]:
    """``path`` as mu-law 20 ms frames at 8 kHz (mixed to mono, resampled, last frame padded)."""
    try:
        data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    except (OSError, RuntimeError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
        raise AudioFileError(f"cannot read {path}: {exc}") from None
    if rate not in SUPPORTED_RATES:
        rates = ", ".join(str(r) for r in sorted(SUPPORTED_RATES))
        raise AudioFileError(f"{path}: sample rate {rate} Hz; use one of {rates}")
    if len(data) > MAX_PLAY_SECONDS * rate:
        raise AudioFileError(f"{path}: longer than {MAX_PLAY_SECONDS} s")
    mono = data.mean(axis=1).astype("<i2").tobytes()
    resampler = StreamingResampler(rate, SAMPLE_RATE)
    pcm = resampler.process(mono) + resampler.flush()
    codes = pcm16_to_ulaw(pcm)
    frames = [codes[i : i + FRAME_BYTES] for i in range(0, len(codes), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1] + ULAW_SILENCE[len(frames[-1]) :]
    return frames


def write_wav(path: Path, ulaw: bytes | bytearray | memoryview) -> None:
    """Write mu-law audio as a 16-bit PCM mono 8 kHz WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(ulaw_to_pcm16(ulaw))
