"""The streaming resampler: chunking does not change the result, and nothing drifts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.codecs.resample import StreamingResampler

PAIRS = [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (8000, 48000), (48000, 8000)]


def speechlike(rate: int, seconds: float, seed: int = 1) -> bytes:
    """Tones plus noise, band-limited below the 8 kHz Nyquist so every rate carries it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    signal = sum(np.sin(2 * np.pi * f * t + p) for f, p in ((300, 0.1), (1200, 1.0), (3100, 2.0)))
    noise = rng.normal(0, 0.05, t.size)
    return (np.clip((signal / 3 + noise) * 12000, -32768, 32767)).astype("<i2").tobytes()


def resample_whole(data: bytes, pair: tuple[int, int]) -> np.ndarray:
    resampler = StreamingResampler(*pair)
    return np.frombuffer(resampler.process(data) + resampler.flush(), dtype="<i2")


def resample_chunked(data: bytes, pair: tuple[int, int], sizes: list[int]) -> np.ndarray:
    resampler = StreamingResampler(*pair)
    out, offset, index = [], 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        out.append(resampler.process(data[offset : offset + size]))
        offset, index = offset + size, index + 1
    out.append(resampler.flush())
    return np.frombuffer(b"".join(out), dtype="<i2")


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    error = ref - other.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(error**2), 1e-12)))


@settings(max_examples=25, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    sizes=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=20),
)
def test_random_chunking_matches_one_piece(pair: tuple[int, int], sizes: list[int]) -> None:
    data = speechlike(pair[0], 0.5)
    whole = resample_whole(data, pair)
    chunked = resample_chunked(data, pair, sizes)
    assert chunked.size == whole.size
    assert snr_db(whole, chunked) >= 60
    # No clicks: the sample-to-sample step never exceeds what the signal itself does.
    assert np.max(np.abs(np.diff(chunked.astype(np.int64)))) <= (
        np.max(np.abs(np.diff(whole.astype(np.int64)))) + 64
    )


@pytest.mark.parametrize("pair", PAIRS)
def test_ten_minutes_in_20ms_chunks_has_exactly_the_expected_length(
    pair: tuple[int, int],
) -> None:
    in_rate, out_rate = pair
    frame = speechlike(in_rate, 0.02)
    resampler = StreamingResampler(in_rate, out_rate)
    produced = 0
    frames = 10 * 60 * 50
    for _ in range(frames):
        produced += len(resampler.process(frame)) // 2
    produced += len(resampler.flush()) // 2
    assert produced == frames * (len(frame) // 2) * out_rate // in_rate


@pytest.mark.parametrize("pair", PAIRS)
def test_a_tone_keeps_its_frequency_and_level(pair: tuple[int, int]) -> None:
    in_rate, out_rate = pair
    t = np.arange(in_rate) / in_rate
    tone = (np.sin(2 * np.pi * 1000 * t) * 10000).astype("<i2").tobytes()
    out = resample_whole(tone, pair).astype(np.float64)
    steady = out[out_rate // 10 : -out_rate // 10]
    spectrum = np.abs(np.fft.rfft(steady))
    peak_hz = np.argmax(spectrum) * out_rate / steady.size
    assert abs(peak_hz - 1000) < 2
    assert abs(np.sqrt(np.mean(steady**2)) - 10000 / np.sqrt(2)) < 10000 * 0.02


def test_odd_byte_chunks_are_carried_not_lost() -> None:
    data = speechlike(8000, 0.2)
    whole = resample_whole(data, (8000, 16000))
    odd = resample_chunked(data, (8000, 16000), [3, 1, 5, 7])
    assert odd.size == whole.size and snr_db(whole, odd) >= 60


def test_unsupported_rates_and_use_after_flush_are_errors() -> None:
    with pytest.raises(ValueError):
        StreamingResampler(8000, 44100)
    with pytest.raises(ValueError):
        StreamingResampler(16000, 48000)
    resampler = StreamingResampler(8000, 16000)
    resampler.flush()
    with pytest.raises(RuntimeError):
        resampler.process(b"\x00\x00")


def test_same_rate_is_a_pass_through() -> None:
    data = speechlike(8000, 0.1)
    resampler = StreamingResampler(8000, 8000)
    assert resampler.process(data) + resampler.flush() == data


def tone(rate: int, hz: float, seconds: float = 1.0, amplitude: float = 10000.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def level_db(samples: np.ndarray, rate: int, hz: float) -> float:
    """Level of the ``hz`` component (dB re full scale of a 10000-amplitude sine), windowed."""
    steady = samples[rate // 10 : -rate // 10].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(steady.size)))
    bin_hz = rate / steady.size
    index = int(round(hz / bin_hz))
    peak = spectrum[max(0, index - 3) : index + 4].max()
    return float(20 * np.log10(peak / (10000 * steady.size / 4) + 1e-12))


@pytest.mark.parametrize("high", [16000, 24000, 48000])
def test_telephone_band_is_flat_and_out_of_band_is_removed(high: int) -> None:
    for hz in (300, 1000, 3000, 3400):
        up = resample_whole(tone(8000, hz), (8000, high))
        assert abs(level_db(up, high, hz)) < 0.1, hz
        down = resample_whole(tone(high, hz), (high, 8000))
        assert abs(level_db(down, 8000, hz)) < 0.1, hz
    # Upsampling leaves no image of a 1 kHz tone at 8 kHz - 1 kHz = 7 kHz.
    up = resample_whole(tone(8000, 1000), (8000, high))
    assert level_db(up, high, 7000) < -65
    # Downsampling does not fold 6 kHz into the band (it would alias to 2 kHz).
    down = resample_whole(tone(high, 6000), (high, 8000))
    assert level_db(down, 8000, 2000) < -65


@pytest.mark.parametrize("pair", PAIRS)
def test_delay_is_a_couple_of_milliseconds(pair: tuple[int, int]) -> None:
    """A click comes out within 2.5 ms (a conversation cannot afford a long filter)."""
    in_rate, out_rate = pair
    click = np.zeros(in_rate // 10, dtype="<i2")
    click[0] = 20000
    resampler = StreamingResampler(in_rate, out_rate)
    out = np.frombuffer(resampler.process(click.tobytes()), dtype="<i2")
    peak_ms = int(np.argmax(np.abs(out))) / out_rate * 1000
    assert peak_ms <= 2.5
    assert resampler.delay_ms <= 2.5
