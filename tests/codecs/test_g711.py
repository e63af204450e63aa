"""G.711 against audioop, exhaustively: all 65,536 PCM values and all 256 codes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.codecs.oracle import audioop
from trunkline.codecs import g711

ALL_PCM = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_for_every_sample() -> None:
    assert g711.pcm16_to_ulaw(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)


def test_alaw_encode_matches_audioop_for_every_sample() -> None:
    assert g711.pcm16_to_alaw(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)


def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    assert g711.ulaw_to_pcm16(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_for_every_code() -> None:
    assert g711.alaw_to_pcm16(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_transcoding_tables_equal_decode_then_encode() -> None:
    assert g711.ulaw_to_alaw(ALL_CODES) == audioop.lin2alaw(audioop.ulaw2lin(ALL_CODES, 2), 2)
    assert g711.alaw_to_ulaw(ALL_CODES) == audioop.lin2ulaw(audioop.alaw2lin(ALL_CODES, 2), 2)


def test_into_variants_write_the_same_values_into_caller_buffers() -> None:
    codes = np.frombuffer(ALL_CODES, dtype=np.uint8)
    pcm = np.empty(256, dtype=np.int16)
    g711.ulaw_to_pcm16_into(codes, pcm)
    assert pcm.tobytes() == g711.ulaw_to_pcm16(ALL_CODES)
    g711.alaw_to_pcm16_into(codes, pcm)
    assert pcm.tobytes() == g711.alaw_to_pcm16(ALL_CODES)
    samples = np.frombuffer(ALL_PCM, dtype="<i2")
    out = np.empty(samples.size, dtype=np.uint8)
    g711.pcm16_to_ulaw_into(samples, out)
    assert out.tobytes() == audioop.lin2ulaw(ALL_PCM, 2)
    g711.pcm16_to_alaw_into(samples, out)
    assert out.tobytes() == audioop.lin2alaw(ALL_PCM, 2)


def test_odd_length_pcm_is_refused() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        g711.pcm16_to_ulaw(b"\x00\x01\x02")


@given(st.binary(max_size=4000))
def test_decode_encode_is_identity_on_codes(codes: bytes) -> None:
    """Every μ-law code but negative zero (0x7F → 0 → 0xFF) survives a round trip."""
    canonical = codes.replace(b"\x7f", b"\xff")
    assert g711.pcm16_to_ulaw(g711.ulaw_to_pcm16(codes)) == canonical
    assert g711.pcm16_to_alaw(g711.alaw_to_pcm16(codes)) == codes


@given(st.binary(max_size=4000).map(lambda b: b[: len(b) - len(b) % 2]))
def test_encode_matches_audioop_on_random_buffers(pcm: bytes) -> None:
    assert g711.pcm16_to_ulaw(pcm) == audioop.lin2ulaw(pcm, 2)
    assert g711.pcm16_to_alaw(pcm) == audioop.lin2alaw(pcm, 2)
