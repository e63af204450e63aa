"""The telephone line that real speech goes through before its word error rate is measured."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import human_speech
from benchmarks.telephone import add_noise, band_limit, snr_db, telephone_line
from tests.conftest import require
from trunkline.codecs.g711 import ulaw_to_pcm16

RATE = 16000


def tone(hz: float, seconds: float = 1.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return amplitude * np.sin(2 * np.pi * hz * t)


def power(samples: np.ndarray) -> float:
    return float(np.mean(np.asarray(samples, dtype=np.float64) ** 2))


@pytest.mark.parametrize(("hz", "kept"), [(100, False), (1000, True), (3000, True), (5000, False)])
def test_only_the_voice_band_passes(hz: float, kept: bool) -> None:
    original = tone(hz)
    ratio = power(band_limit(original, RATE)) / power(original)
    assert ratio > 0.95 if kept else ratio < 0.01


@pytest.mark.parametrize("snr", [20.0, 10.0])
def test_noise_is_added_at_the_stated_ratio_and_seeded(snr: float) -> None:
    clean = tone(440)
    noisy = add_noise(clean, snr, seed=3)
    assert abs(snr_db(clean, noisy) - snr) < 0.3
    assert np.array_equal(noisy, add_noise(clean, snr, seed=3))
    assert not np.array_equal(noisy, add_noise(clean, snr, seed=4))


def test_the_line_delivers_8khz_mulaw_of_the_voice_band() -> None:
    pcm = np.round(tone(1000, amplitude=6000) + tone(6000, amplitude=6000)).astype("<i2")
    ulaw = telephone_line(pcm.tobytes(), RATE, snr=None)
    assert len(ulaw) == len(pcm) // 2  # one byte a sample at 8 kHz
    line = np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(line)) ** 2
    freqs = np.fft.rfftfreq(line.size, 1 / 8000)
    at_1k = spectrum[(freqs > 950) & (freqs < 1050)].sum()
    assert at_1k > 0.9 * spectrum.sum()  # the 6 kHz tone neither passed nor folded back
    with pytest.raises(ValueError):
        telephone_line(pcm.tobytes(), 11025, snr=None)


def test_the_human_speech_corpus_has_audio_and_transcripts() -> None:
    require(human_speech.available(), "pocketsphinx-testdata is not installed")
    clips = human_speech.clips()
    assert len(clips) == 10
    for clip in clips:
        assert clip.rate == 16000
        assert 0.5 < len(clip.pcm16) / 2 / clip.rate < 10
        assert clip.text and clip.text == clip.text.lower()
