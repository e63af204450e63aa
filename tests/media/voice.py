"""A synthetic voiced signal the segmenter's VAD takes for speech (no TTS engine needed)."""

from __future__ import annotations

import numpy as np

from trunkline.codecs.g711 import pcm16_to_ulaw


def voiced_pcm(seconds: float) -> bytes:
    """PCM16 8 kHz: a gliding 140 Hz buzz with harmonics, amplitude-modulated like syllables."""
    t = np.arange(int(8000 * seconds)) / 8000
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.cumsum(np.pi * f0 / 8000)
    signal = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.6 + 0.4 * np.sin(8 * np.pi * t))
    return (signal / np.abs(signal).max() * 8000).astype("<i2").tobytes()


def voiced_ulaw_frames(seconds: float) -> list[bytes]:
    ulaw = pcm16_to_ulaw(voiced_pcm(seconds))
    return [ulaw[i : i + 160] for i in range(0, len(ulaw) - 159, 160)]
