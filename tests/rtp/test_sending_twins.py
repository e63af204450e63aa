"""An RTP session's outbound packetiser in C (``RtpSender``) and its pure-Python twin
(``PyRtpSender``), driven with the same slots.

Both must build the same packets byte for byte, stay silent in the same slots and
keep the same state (sequence number, RTP time, talk-spurt flag, counters) through
talk spurts, silence, re-phasing (``rewind``), sequence and timestamp wraps, and
payloads of any size; and refuse the same bad arguments, changing nothing.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import require
from tests.test_speedups import compiled
from trunkline.gateway.rtp.sending import PyRtpSender

STATE = ("payload_type", "ssrc", "sequence", "timestamp", "talking", "packets_out", "bytes_out")


def c_sender() -> Any:
    module = compiled()
    require(module is not None, "the C extension trunkline._speedups is not built")
    assert module is not None
    return module.RtpSender


def state(sender: Any) -> dict[str, Any]:
    return {name: getattr(sender, name) for name in STATE}


def both(payload_type: int, ssrc: int, sequence: int, timestamp: int) -> tuple[Any, Any]:
    return c_sender()(payload_type, ssrc, sequence, timestamp), PyRtpSender(
        payload_type, ssrc, sequence, timestamp
    )


SLOT = st.one_of(
    st.none(),  # silence
    st.binary(min_size=0, max_size=400),  # audio of any size
    st.integers(-(2**40), 2**40).map(lambda n: ("rewind", n)),
)


@settings(max_examples=300, deadline=None)
@given(
    payload_type=st.integers(0, 127),
    ssrc=st.integers(0, 2**32 - 1),
    sequence=st.integers(0, 2**16 - 1),
    timestamp=st.integers(0, 2**32 - 1),
    slots=st.lists(SLOT, max_size=60),
    as_view=st.booleans(),
)
def test_the_twins_build_the_same_packets(
    payload_type: int,
    ssrc: int,
    sequence: int,
    timestamp: int,
    slots: list[Any],
    as_view: bool,
) -> None:
    ours, twin = both(payload_type, ssrc, sequence, timestamp)
    assert state(ours) == state(twin)
    for index, slot in enumerate(slots):
        if isinstance(slot, tuple):
            ours.rewind(slot[1])
            twin.rewind(slot[1])
        else:
            payload = memoryview(slot) if as_view and slot is not None else slot
            assert ours.next_frame(payload) == twin.next_frame(payload), f"slot {index}"
        assert state(ours) == state(twin), f"slot {index}"


def test_a_talk_spurt_is_numbered_stamped_and_marked_as_rfc_3550_says() -> None:
    """Near both wraps: one marked packet per spurt, sequence numbers without gaps, RTP
    time advancing 160 a slot through silence and moving back by a rewind."""
    for sender in both(0, 0xCAFE, 0xFFFF, 0xFFFFFF00):
        first = sender.next_frame(b"\xff" * 160)
        second = sender.next_frame(b"\x7f" * 160)
        assert sender.next_frame(None) is None
        sender.rewind(40)
        third = sender.next_frame(b"\x00" * 160)
        headers = [struct.unpack("!BBHII", packet[:12]) for packet in (first, second, third)]
        assert headers == [
            (0x80, 0x80, 0xFFFF, 0xFFFFFF00, 0xCAFE),  # a spurt starts: the marker
            (0x80, 0x00, 0x0000, 0xFFFFFFA0, 0xCAFE),  # the sequence number wraps
            (0x80, 0x80, 0x0001, 0x000000B8, 0xCAFE),  # after silence and a 40-sample rewind
        ]
        assert [packet[12:] for packet in (first, second, third)] == [
            b"\xff" * 160,
            b"\x7f" * 160,
            b"\x00" * 160,
        ]
        assert (sender.packets_out, sender.bytes_out) == (3, 3 * 172)
        assert sender.timestamp == 0x00000158


def test_each_packet_is_a_new_object_the_transport_may_keep() -> None:
    for sender in both(8, 1, 2, 3):
        payload = bytearray(b"a" * 160)
        first = sender.next_frame(payload)
        payload[:] = b"b" * 160
        second = sender.next_frame(payload)
        assert first is not second
        assert first[12:] == b"a" * 160 and second[12:] == b"b" * 160


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ((128, 0, 0, 0), ValueError),
        ((-1, 0, 0, 0), ValueError),
        ((0, 2**32, 0, 0), ValueError),
        ((0, -1, 0, 0), ValueError),
        ((0, 0, 2**16, 0), ValueError),
        ((0, 0, 0, 2**32), ValueError),
        ((0, 0, 0, 2**100), ValueError),
        ((0, 0, 0, 1.5), TypeError),
        (("0", 0, 0, 0), TypeError),
    ],
)
def test_the_twins_refuse_the_same_fields(arguments: tuple[Any, ...], error: type) -> None:
    for kind in (c_sender(), PyRtpSender):
        with pytest.raises(error):
            kind(*arguments)


def test_a_refused_payload_or_rewind_changes_nothing() -> None:
    ours, twin = both(0, 5, 6, 7)
    for sender in (ours, twin):
        sender.next_frame(b"x" * 160)
        before = state(sender)
        with pytest.raises(TypeError):
            sender.next_frame(160)  # not a buffer
        with pytest.raises(TypeError):
            sender.next_frame("text")
        with pytest.raises(TypeError):
            sender.rewind(1.5)
        assert state(sender) == before
    assert state(ours) == state(twin)
