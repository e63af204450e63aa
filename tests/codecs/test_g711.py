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


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode_tables_match_audioop_for_every_code(law: str) -> None:
    """The table path (big buffers, big-endian hosts) apart from the audioop fast path."""
    expected = getattr(audioop, f"{law}2lin")(ALL_CODES, 2)
    assert g711.table_decode(ALL_CODES, law) == expected
    table = g711.ULAW_DECODE if law == "ulaw" else g711.ALAW_DECODE
    assert table.astype("<i2").tobytes() == expected


@pytest.mark.parametrize("size", [160, g711.AUDIOOP_MAX_BYTES, g711.AUDIOOP_MAX_BYTES + 2, 20000])
def test_both_paths_agree_across_the_size_switch(size: int) -> None:
    pcm = (ALL_PCM * 2)[:size]
    codes = (ALL_CODES * 100)[: size // 2]
    assert g711.pcm16_to_ulaw(pcm) == audioop.lin2ulaw(pcm, 2)
    assert g711.pcm16_to_alaw(pcm) == audioop.lin2alaw(pcm, 2)
    assert g711.ulaw_to_pcm16(codes) == g711.table_decode(codes, "ulaw")
    assert g711.alaw_to_pcm16(codes) == g711.table_decode(codes, "alaw")


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


@pytest.mark.parametrize("size", [3, 4097])
def test_odd_length_pcm_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        g711.pcm16_to_ulaw(b"\x01" * size)
    with pytest.raises(ValueError, match="even number of bytes"):
        g711.pcm16_to_alaw(b"\x01" * size)


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
