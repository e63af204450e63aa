"""The re-framer and RFC 4733 telephone events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.codecs import (
    Reframer,
    TelephoneEvent,
    TelephoneEventError,
    decode_event,
    encode_event,
    frame_bytes,
)
from trunkline.codecs.dtmf import DTMF_KEYS


@given(st.lists(st.binary(max_size=700), max_size=30), st.integers(min_value=1, max_value=400))
def test_frames_plus_remainder_reassemble_the_input(chunks: list[bytes], size: int) -> None:
    reframer = Reframer(size)
    frames = [f for chunk in chunks for f in reframer.push(chunk)]
    assert all(len(f) == size for f in frames)
    rest = reframer.flush(pad=False) or b""
    assert len(rest) < size
    assert b"".join(frames) + rest == b"".join(chunks)


def test_flush_pads_with_zeros_or_a_fill_byte() -> None:
    reframer = Reframer(160)
    assert reframer.push(b"\x01" * 200) == [b"\x01" * 160]
    assert reframer.flush() == b"\x01" * 40 + b"\x00" * 120
    assert reframer.flush() is None
    reframer.push(b"\x02" * 10)
    assert reframer.flush(fill=0xFF) == b"\x02" * 10 + b"\xff" * 150


def test_pending_audio_is_bounded_oldest_dropped_and_counted() -> None:
    reframer = Reframer(4, max_pending=8)
    frames = reframer.push(bytes(range(14)))
    assert reframer.dropped_bytes == 8
    assert frames == [bytes(range(8, 12))]
    assert reframer.flush(pad=False) == bytes(range(12, 14))


def test_frame_sizes() -> None:
    assert frame_bytes(8000, 1) == 160
    assert frame_bytes(16000, 2) == 640
    assert frame_bytes(24000, 2) == 960


def test_known_event_layout() -> None:
    # '#' (event 11), end bit set, volume 10, duration 800 = 0x0320.
    assert encode_event(TelephoneEvent("#", True, 10, 800)) == bytes([11, 0x8A, 0x03, 0x20])
    assert decode_event(bytes([5, 0x07, 0x00, 0xA0])) == TelephoneEvent("5", False, 7, 160)


@given(
    st.sampled_from(DTMF_KEYS),
    st.booleans(),
    st.integers(min_value=0, max_value=63),
    st.integers(min_value=0, max_value=0xFFFF),
)
def test_events_round_trip(digit: str, end: bool, volume: int, duration: int) -> None:
    event = TelephoneEvent(digit, end, volume, duration)
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize(
    "payload", [b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05", bytes([16, 0, 0, 0])]
)
def test_malformed_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(TelephoneEventError):
        decode_event(payload)


def test_out_of_range_fields_are_refused() -> None:
    with pytest.raises(TelephoneEventError):
        TelephoneEvent("E", False, 0, 0)
    with pytest.raises(TelephoneEventError):
        TelephoneEvent("1", False, 64, 0)
    with pytest.raises(TelephoneEventError):
        TelephoneEvent("1", False, 0, 70000)
