"""RTCP: compound sender reports, report blocks from the session's statistics, reports in."""

from __future__ import annotations

import struct

from tests.fakes.clock import FakeClock
from trunkline.gateway.rtp.packet import build_packet
from trunkline.gateway.rtp.rtcp import (
    RTCP_SDES,
    RTCP_SR,
    ReceptionStats,
    RtcpState,
    build_report,
    receive_report,
)
from trunkline.gateway.rtp.session import RtpSession


def report(stats: ReceptionStats | None, state: RtcpState | None = None) -> bytes:
    return build_report(
        ssrc=0x11223344, rtp_timestamp=16000, packets_sent=100, octets_sent=16000,
        stats=stats, state=state or RtcpState(), now_unix=1_800_000_000.5, now_mono=10.0,
    )  # fmt: skip


def test_sender_report_with_a_block_and_cname() -> None:
    stats = ReceptionStats(ssrc=0xAABBCCDD, extended_highest=70_010, expected=100,
                           received=90, jitter=12)  # fmt: skip
    packet = report(stats)
    first, kind, length = struct.unpack_from("!BBH", packet)
    assert (first >> 6, first & 0x1F, kind) == (2, 1, RTCP_SR)
    sr_bytes = (length + 1) * 4
    ssrc, ntp_seconds, _, rtp_ts, count, octets = struct.unpack_from("!IIIIII", packet, 4)
    assert (ssrc, rtp_ts, count, octets) == (0x11223344, 16000, 100, 16000)
    assert ntp_seconds == 1_800_000_000 + 2_208_988_800
    block = struct.unpack_from("!IIIIII", packet, 28)
    assert block[0] == 0xAABBCCDD
    assert block[1] >> 24 == (10 << 8) // 100  # fraction lost: 10 of 100
    assert block[1] & 0xFFFFFF == 10  # cumulative lost
    assert (block[2], block[3]) == (70_010, 12)
    sdes = packet[sr_bytes:]
    assert sdes[1] == RTCP_SDES and b"trunkline" in sdes and len(packet) % 4 == 0


def test_reports_in_are_checked_and_give_lsr_and_dlsr() -> None:
    state = RtcpState()
    receive_report(report(None), state, now_mono=5.0)  # a peer's SR (same format)
    assert state.packets_in == 1 and state.last_sr_at == 5.0
    assert state.last_sr_ntp_middle != 0
    for bad in (b"\x80\xc8\x00", b"\x00" * 8, b"\x80\xca\x00\x01" + b"\x00" * 4,
                report(None)[:-4]):  # fmt: skip
        receive_report(bad, state, now_mono=5.0)
    assert state.dropped_malformed == 4
    stats = ReceptionStats(ssrc=1, extended_highest=10, expected=10, received=10, jitter=0)
    packet = build_report(
        ssrc=2, rtp_timestamp=0, packets_sent=0, octets_sent=0, stats=stats, state=state,
        now_unix=1_800_000_000.0, now_mono=5.5,
    )  # fmt: skip
    lsr, dlsr = struct.unpack_from("!II", packet, 28 + 16)
    assert lsr == state.last_sr_ntp_middle and dlsr == 65536 // 2  # half a second, 1/65536 s


def test_session_statistics_follow_wraps_losses_and_jitter() -> None:
    clock = FakeClock(100.0)
    session = RtpSession(0, None, lambda p: None, lambda d: None, clock=clock)
    source = ("192.0.2.1", 4000)
    sequence, timestamp = 65_530, 1000
    for index in range(20):
        clock.advance(0.020)
        if index in (8, 9):  # two lost packets
            sequence, timestamp = (sequence + 1) & 0xFFFF, timestamp + 160
            continue
        session.receive(build_packet(b"\x00" * 160, payload_type=0, sequence=sequence,
                                     timestamp=timestamp, ssrc=7), source)  # fmt: skip
        sequence, timestamp = (sequence + 1) & 0xFFFF, timestamp + 160
    stats = session.reception_stats()
    assert stats is not None
    assert stats.extended_highest == 65_536 + 13  # 65530 + 19, past the wrap
    assert (stats.expected, stats.received) == (20, 18)
    assert stats.jitter <= 1  # arrivals paced exactly like their timestamps
    clock.advance(0.045)  # 25 ms late
    session.receive(build_packet(b"\x00" * 160, payload_type=0, sequence=sequence,
                                 timestamp=timestamp, ssrc=7), source)  # fmt: skip
    late = session.reception_stats()
    assert late is not None and late.jitter >= 200 // 16  # (25 ms = 200 units) / 16
