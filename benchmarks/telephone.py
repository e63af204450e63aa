"""A telephone line for recorded speech: 300–3400 Hz, 8 kHz, μ-law, with noise at a set SNR.

The word error rate of clean studio audio says little about calls. A clip
goes through what a phone call does to it: noise at the caller's end (white,
seeded, scaled to the stated signal-to-noise ratio over the clip), the
300–3400 Hz voice band, 8 kHz sampling and G.711 μ-law coding.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from trunkline.codecs.g711 import pcm16_to_ulaw

Floats = npt.NDArray[np.float64]
LOW_HZ = 300.0
HIGH_HZ = 3400.0
LINE_RATE = 8000


def band_limit(samples: Floats, rate: int, low: float = LOW_HZ, high: float = HIGH_HZ) -> Floats:
    """``samples`` with everything outside ``low``..``high`` Hz removed."""
    spectrum = np.fft.rfft(samples)
    frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
    spectrum[(frequencies < low) | (frequencies > high)] = 0
    return np.fft.irfft(spectrum, len(samples))


def add_noise(samples: Floats, snr_db: float, seed: int) -> Floats:
    """``samples`` plus white noise whose power is ``snr_db`` below theirs."""
    power = float(np.mean(samples**2))
    noise = np.random.default_rng(seed).standard_normal(len(samples))
    noise *= np.sqrt(power / 10 ** (snr_db / 10))
    return samples + noise


def snr_db(clean: Floats, noisy: Floats) -> float:
    """The signal-to-noise ratio of ``noisy`` against ``clean`` (tests check the line with it)."""
    noise = noisy - clean
    return float(10 * np.log10(np.mean(clean**2) / np.mean(noise**2)))


def telephone_line(pcm16: bytes, rate: int, *, snr: float | None, seed: int = 0) -> bytes:
    """``pcm16`` (mono, ``rate`` Hz, a multiple of 8 kHz) as μ-law 8 kHz from a phone line."""
    if rate % LINE_RATE:
        raise ValueError("rate must be a multiple of 8000")
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    if snr is not None:
        samples = add_noise(samples, snr, seed)
    # Nothing is left above 3400 Hz, so every (rate/8000)th sample is a clean 8 kHz signal.
    line = band_limit(samples, rate)[:: rate // LINE_RATE]
    pcm = np.clip(np.round(line), -32768, 32767).astype("<i2").tobytes()
    return pcm16_to_ulaw(pcm)
