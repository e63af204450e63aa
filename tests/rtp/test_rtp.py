"""RTP packets and the per-call session: parsing, latching, filtering, DTMF, timing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.clock import FakeClock
from trunkline.codecs.dtmf import TelephoneEvent, encode_event
from trunkline.gateway.rtp.packet import RtpParseError, build_packet, parse_packet
from trunkline.gateway.rtp.session import LEARN_GRACE_SECONDS, RtpSession
from trunkline.gateway.rtp.transport import RtpEndpoint

CARRIER = ("192.0.2.10", 40000)
INTRUDER = ("192.0.2.66", 40000)


def packet(
    seq: int, payload: bytes = b"\x01" * 160, pt: int = 0, ssrc: int = 7, ts: int = 0
) -> bytes:
    return build_packet(payload, payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc)


@given(
    st.binary(max_size=400),
    st.integers(0, 127),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.booleans(),
)
def test_build_parse_round_trip(
    payload: bytes, pt: int, seq: int, ts: int, ssrc: int, marker: bool
) -> None:
    parsed = parse_packet(
        build_packet(payload, payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc, marker=marker)
    )
    assert (parsed.payload_type, parsed.sequence, parsed.timestamp, parsed.ssrc, parsed.marker) == (
        pt, seq, ts, ssrc, marker,
    )  # fmt: skip
    assert bytes(parsed.payload) == payload


def test_csrc_extension_and_padding_are_skipped() -> None:
    header = bytes([0x80 | 0x20 | 0x10 | 2, 0, 0, 1]) + bytes(8)  # padding, extension, 2 CSRCs
    body = bytes(8) + bytes([0xBE, 0xDE, 0, 1]) + bytes(4) + b"audio" + bytes([0, 0, 3])
    assert bytes(parse_packet(header + body).payload) == b"audio"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(11),
        bytes([0x40]) + bytes(11),  # version 1
        bytes([0x8F]) + bytes(11),  # 15 CSRCs, none present
        bytes([0x90]) + bytes(11),  # extension bit without the extension
        bytes([0xA0]) + bytes(10) + b"\x00",  # padding length 0
        bytes([0xA0]) + bytes(10) + b"\xff",  # padding longer than the packet
    ],
)
def test_malformed_packets_raise(data: bytes) -> None:
    with pytest.raises(RtpParseError):
        parse_packet(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_datagrams_never_crash_the_session(data: bytes) -> None:
    session = RtpSession(0, 101, lambda p: None, lambda d: None)
    session.receive(data, CARRIER)
    counted = session.counters
    assert counted.packets_in + counted.dropped_malformed + counted.dropped_payload_type == 1


def test_source_is_learned_then_foreign_packets_are_dropped() -> None:
    heard: list[bytes] = []
    session = RtpSession(0, 101, lambda p: heard.append(bytes(p)), lambda d: None, remote=CARRIER)
    session.receive(packet(1), CARRIER)
    assert session.learned_source == CARRIER and session.remote == CARRIER
    session.receive(packet(2, b"\x02" * 160), INTRUDER)
    session.receive(packet(3, b"\x03" * 160), CARRIER)
    assert heard == [b"\x01" * 160, b"\x03" * 160]
    assert session.counters.dropped_foreign_source == 1


def test_the_sdp_address_wins_over_a_first_packet_from_elsewhere() -> None:
    heard: list[int] = []
    session = RtpSession(0, 101, lambda p: heard.append(p[0]), lambda d: None, remote=CARRIER)
    session.receive(packet(1, b"\x01" * 160), INTRUDER)  # the clock: well within the grace
    session.receive(packet(2, b"\x02" * 160), INTRUDER)
    assert session.learned_source is None and session.remote == CARRIER
    session.receive(packet(3, b"\x03" * 160), CARRIER)
    session.receive(packet(4, b"\x04" * 160), INTRUDER)
    assert session.learned_source == CARRIER
    assert heard == [3]
    counters = session.counters
    assert (counters.dropped_unconfirmed_source, counters.dropped_foreign_source) == (2, 1)


def test_another_port_on_the_sdp_host_or_the_signalling_host_is_learned_at_once() -> None:
    rewritten = ("198.51.100.5", 4444)  # NAT kept the host, changed the port
    clock = FakeClock(0.0)
    session = RtpSession(
        0, None, lambda p: None, lambda d: None, remote=("198.51.100.5", 4000), clock=clock
    )
    session.receive(packet(1), rewritten)
    assert session.learned_source == rewritten
    behind_nat = RtpSession(
        0,
        None,
        lambda p: None,
        lambda d: None,
        remote=("10.0.0.5", 4000),  # the caller's inside address
        signalling_host="198.51.100.9",
        clock=clock,
    )
    behind_nat.receive(packet(1), ("198.51.100.9", 30000))
    assert behind_nat.learned_source == ("198.51.100.9", 30000)


def test_another_source_is_learned_only_after_the_sdp_address_stays_silent() -> None:
    heard: list[int] = []
    nat = ("198.51.100.9", 30000)
    clock = FakeClock(100.0)
    session = RtpSession(
        0, None, lambda p: heard.append(p[0]), lambda d: None, remote=("10.0.0.5", 4000),
        clock=clock,
    )  # fmt: skip
    session.receive(packet(1, b"\x01" * 160), nat)
    clock.now = 100.5
    session.receive(packet(2, b"\x02" * 160), nat)
    assert session.learned_source is None
    clock.now = 100.0 + LEARN_GRACE_SECONDS
    session.receive(packet(3, b"\x03" * 160), nat)
    assert session.learned_source == nat
    clock.now = 102.0
    session.receive(packet(4, b"\x04" * 160), ("10.0.0.5", 4000))
    session.receive(packet(5, b"\x05" * 160), INTRUDER)
    session.receive(packet(6, b"\x06" * 160), nat)
    assert heard == [3, 6]  # never switched once media flowed
    counters = session.counters
    assert (counters.dropped_unconfirmed_source, counters.dropped_foreign_source) == (2, 2)


def test_the_sdp_address_speaking_during_the_grace_still_wins() -> None:
    clock = FakeClock(0.0)
    session = RtpSession(0, None, lambda p: None, lambda d: None, remote=CARRIER, clock=clock)
    session.receive(packet(1), INTRUDER)
    clock.now = LEARN_GRACE_SECONDS / 2
    session.receive(packet(2), CARRIER)
    clock.now = LEARN_GRACE_SECONDS * 2
    session.receive(packet(3), INTRUDER)
    assert session.learned_source == CARRIER


@pytest.mark.parametrize("remote", [None, ("0.0.0.0", 4000), ("10.0.0.5", 0)])
def test_without_a_usable_sdp_address_the_first_valid_packet_is_learned(
    remote: tuple[str, int] | None,
) -> None:
    session = RtpSession(0, None, lambda p: None, lambda d: None, remote=remote, clock=FakeClock())
    session.receive(b"\x80", INTRUDER)  # malformed: not learned
    assert session.learned_source is None
    session.receive(packet(1), CARRIER)
    assert session.learned_source == CARRIER


def test_unnegotiated_payload_types_duplicates_and_late_packets_are_dropped() -> None:
    heard: list[int] = []
    session = RtpSession(0, 101, lambda p: heard.append(p[0]), lambda d: None)
    session.receive(packet(10, b"\x0a" * 160), CARRIER)
    session.receive(packet(11, pt=8), CARRIER)  # PCMA was not negotiated
    session.receive(packet(12, b"\x0c" * 160), CARRIER)
    session.receive(packet(12, b"\x0c" * 160), CARRIER)  # duplicate
    session.receive(packet(11, b"\x0b" * 160), CARRIER)  # late
    session.receive(packet(15, b"\x0f" * 160), CARRIER)
    assert heard == [10, 12, 15]
    counters = session.counters
    assert (counters.dropped_payload_type, counters.dropped_late, counters.lost) == (1, 2, 3)


def test_sequence_wrap_around_is_in_order() -> None:
    heard: list[int] = []
    session = RtpSession(0, None, lambda p: heard.append(p[0]), lambda d: None)
    for seq in (65534, 65535, 0, 1):
        session.receive(packet(seq, bytes([seq & 0xFF]) * 160), CARRIER)
    assert heard == [0xFE, 0xFF, 0, 1] and session.counters.lost == 0


def test_each_dtmf_event_is_reported_once() -> None:
    digits: list[str] = []
    session = RtpSession(0, 101, lambda p: None, digits.append)
    for end, duration in ((False, 160), (False, 320), (True, 480), (True, 480), (True, 480)):
        payload = encode_event(TelephoneEvent("5", end, 10, duration))
        session.receive(packet(1, payload, pt=101, ts=8000), CARRIER)
    session.receive(
        packet(2, encode_event(TelephoneEvent("#", True, 10, 400)), pt=101, ts=9600), CARRIER
    )
    assert digits == ["5", "#"]


def test_outbound_timing_continues_across_silence_and_marks_talk_spurts() -> None:
    session = RtpSession(0, None, lambda p: None, lambda d: None)
    first = parse_packet(bytes(session.next_frame(b"\x00" * 160) or b""))
    second = parse_packet(bytes(session.next_frame(b"\x00" * 160) or b""))
    assert session.next_frame(None) is None
    assert session.next_frame(None) is None
    after_silence = parse_packet(bytes(session.next_frame(b"\x00" * 160) or b""))
    assert first.marker and not second.marker and after_silence.marker
    assert (second.sequence - first.sequence) & 0xFFFF == 1
    assert (after_silence.sequence - second.sequence) & 0xFFFF == 1
    assert (second.timestamp - first.timestamp) & 0xFFFFFFFF == 160
    assert (after_silence.timestamp - second.timestamp) & 0xFFFFFFFF == 160 * 3
    assert first.ssrc == after_silence.ssrc == session.ssrc


def test_rewind_keeps_rtp_time_with_wall_time_after_a_rephase() -> None:
    session = RtpSession(0, None, lambda p: None, lambda d: None)
    first = parse_packet(bytes(session.next_frame(b"\x00" * 160) or b""))
    assert session.next_frame(None) is None
    session.rewind(120)  # the next slot comes 15 ms sooner than the 20 ms cadence
    spurt = parse_packet(bytes(session.next_frame(b"\x00" * 160) or b""))
    assert (spurt.timestamp - first.timestamp) & 0xFFFFFFFF == 2 * 160 - 120
    assert spurt.marker


def test_a_malformed_event_packet_is_counted_once_and_not_latched_onto() -> None:
    session = RtpSession(0, 101, lambda p: None, lambda d: None)
    session.receive(packet(1, b"\x01", pt=101), INTRUDER)  # an event payload is 4 bytes
    counters = session.counters
    assert (counters.packets_in, counters.dropped_malformed) == (0, 1)
    assert session.learned_source is None
    session.receive(packet(2), CARRIER)
    assert session.learned_source == CARRIER


class KeepingTransport:
    """A datagram transport that keeps what it is given, as a transport that had to queue does."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | memoryview, tuple[str, int]]] = []

    def sendto(self, data: bytes | memoryview, address: tuple[str, int]) -> None:
        self.sent.append((data, address))

    def get_write_buffer_size(self) -> int:
        return 0  # nothing queued before the call: the kernel pushes back only on this one


def test_a_packet_the_transport_keeps_is_not_overwritten_by_the_next_frame() -> None:
    endpoint = RtpEndpoint()
    endpoint.session = RtpSession(0, None, lambda p: None, lambda d: None, remote=CARRIER)
    transport = KeepingTransport()
    endpoint.transport = transport  # type: ignore[assignment]
    for fill in (b"\x11", b"\x22"):
        packet = endpoint.session.next_frame(fill * 160)
        assert packet is not None
        endpoint.send(packet)
    payloads = [bytes(parse_packet(bytes(data)).payload) for data, _ in transport.sent]
    assert payloads == [b"\x11" * 160, b"\x22" * 160]
    assert [address for _, address in transport.sent] == [CARRIER, CARRIER]
