"""G.722: frame sizes, a round trip that keeps a sine (wideband ones too), streaming state."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from trunkline.codecs.g722 import FRAME_BYTES, FRAME_SAMPLES, G722Decoder, G722Encoder

RATE = 16_000


def sine(frequency: float, seconds: float, amplitude: float = 8000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def snr_db(reference: npt.NDArray[np.int16], decoded: npt.NDArray[np.int16]) -> float:
    """Signal-to-noise ratio at the best alignment (the codec's filters delay the signal)."""
    best = -np.inf
    ref = reference.astype(np.float64)
    out = decoded.astype(np.float64)
    for lag in range(0, 64):
        a, b = ref[1000 : len(ref) - 100], out[1000 + lag : len(ref) - 100 + lag]
        noise = np.sum((a - b) ** 2)
        best = max(best, 10 * np.log10(np.sum(a**2) / max(noise, 1e-9)))
    return float(best)


def round_trip(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    encoder, decoder = G722Encoder(), G722Decoder()
    decoded = bytearray()
    for start in range(0, len(samples), FRAME_SAMPLES):
        payload = encoder.encode(samples[start : start + FRAME_SAMPLES].tobytes())
        assert len(payload) == FRAME_BYTES
        decoded += decoder.decode(payload)
    return np.frombuffer(bytes(decoded), dtype="<i2")


def test_twenty_ms_is_160_bytes_and_decodes_to_320_samples() -> None:
    payload = G722Encoder().encode(sine(440, 0.02).tobytes())
    assert len(payload) == FRAME_BYTES
    assert len(G722Decoder().decode(payload)) == FRAME_SAMPLES * 2


@pytest.mark.parametrize("frequency", [440.0, 1000.0, 6000.0])
def test_sine_round_trip_keeps_the_signal(frequency: float) -> None:
    samples = sine(frequency, 1.0)
    decoded = round_trip(samples)
    assert len(decoded) == len(samples)
    # 6 kHz is beyond G.711's band: it only survives a wideband codec.
    assert snr_db(samples, decoded) > 20.0


def test_silence_stays_quiet() -> None:
    decoded = round_trip(np.zeros(RATE // 2, dtype=np.int16))
    assert np.max(np.abs(decoded.astype(np.int32))) < 50


def test_chunks_of_any_size_encode_like_one_stream() -> None:
    samples = sine(700, 0.2).tobytes()
    whole = G722Encoder().encode(samples)
    chunked = G722Encoder()
    pieces = b"".join(chunked.encode(samples[i : i + 333]) for i in range(0, len(samples), 333))
    assert pieces == whole  # odd byte and odd sample counts wait for their other half


def test_decoder_accepts_memoryviews() -> None:
    payload = G722Encoder().encode(sine(440, 0.02).tobytes())
    assert G722Decoder().decode(memoryview(payload)) == G722Decoder().decode(payload)
