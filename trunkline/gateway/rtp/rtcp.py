"""Minimal RTCP (RFC 3550 §6), sans I/O: sender reports out, reports in counted.

Every call sends, every ``REPORT_INTERVAL_FRAMES`` frames of its media clock
(5 s, with a random first offset so calls do not report in step), one compound
packet: a sender report (trunkline always sends — audio or silence) with one
reception report block about the caller's stream when there is one, and an
SDES item with trunkline's CNAME. Incoming RTCP is checked for a valid
version and packet type and counted; a sender report's NTP time is kept so the
next report block can carry LSR/DLSR, which lets the far end measure the round
trip.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
REPORT_INTERVAL_FRAMES = 250  # 5 s of 20 ms frames
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
CNAME = b"trunkline"


class RtcpParseError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ReceptionStats:
    """What the RTP session knows about the stream it receives (RFC 3550 §6.4.1)."""

    ssrc: int
    extended_highest: int
    expected: int
    received: int
    jitter: int  # RTP timestamp units


@dataclass(slots=True)
class RtcpState:
    """Per-call reporting state: previous counts for the fraction lost, the last SR heard."""

    expected_prior: int = 0
    received_prior: int = 0
    last_sr_ntp_middle: int = 0
    last_sr_at: float | None = None  # monotonic seconds
    packets_in: int = 0
    dropped_malformed: int = 0
    reports_out: int = 0


def ntp_timestamp(unix_seconds: float) -> tuple[int, int]:
    seconds = int(unix_seconds) + NTP_EPOCH_OFFSET
    fraction = int((unix_seconds % 1.0) * (1 << 32)) & 0xFFFFFFFF
    return seconds & 0xFFFFFFFF, fraction


def _report_block(stats: ReceptionStats, state: RtcpState, now_mono: float) -> bytes:
    expected_interval = stats.expected - state.expected_prior
    received_interval = stats.received - state.received_prior
    state.expected_prior, state.received_prior = stats.expected, stats.received
    lost_interval = expected_interval - received_interval
    fraction = (
        0
        if expected_interval <= 0 or lost_interval <= 0
        else ((lost_interval << 8) // expected_interval)
    )
    cumulative = max(-(1 << 23), min((1 << 23) - 1, stats.expected - stats.received))
    if state.last_sr_at is None:
        lsr = dlsr = 0
    else:
        lsr = state.last_sr_ntp_middle
        dlsr = int((now_mono - state.last_sr_at) * 65536) & 0xFFFFFFFF
    return struct.pack(
        "!IIIIII",
        stats.ssrc,
        (min(fraction, 255) << 24) | (cumulative & 0xFFFFFF),
        stats.extended_highest & 0xFFFFFFFF,
        min(stats.jitter, 0xFFFFFFFF),
        lsr,
        dlsr,
    )


def build_report(
    *,
    ssrc: int,
    rtp_timestamp: int,
    packets_sent: int,
    octets_sent: int,
    stats: ReceptionStats | None,
    state: RtcpState,
    now_unix: float,
    now_mono: float,
) -> bytes:
    """One compound packet: SR (with a report block when receiving) + SDES CNAME."""
    blocks = b"" if stats is None else _report_block(stats, state, now_mono)
    count = 0 if stats is None else 1
    ntp_seconds, ntp_fraction = ntp_timestamp(now_unix)
    body = (
        struct.pack(
            "!IIIIII",
            ssrc,
            ntp_seconds,
            ntp_fraction,
            rtp_timestamp & 0xFFFFFFFF,
            packets_sent & 0xFFFFFFFF,
            octets_sent & 0xFFFFFFFF,
        )
        + blocks
    )
    sender_report = struct.pack("!BBH", 0x80 | count, RTCP_SR, len(body) // 4) + body
    chunk = struct.pack("!IBB", ssrc, 1, len(CNAME)) + CNAME
    chunk += b"\x00" * (4 - len(chunk) % 4)  # END item, padded to a 32-bit boundary
    sdes = struct.pack("!BBH", 0x81, RTCP_SDES, len(chunk) // 4) + chunk
    state.reports_out += 1
    return sender_report + sdes


def receive_report(data: bytes, state: RtcpState, now_mono: float) -> None:
    """Check a compound RTCP packet; keep the NTP time of a sender report."""
    try:
        _check(data)
    except RtcpParseError:
        state.dropped_malformed += 1
        return
    state.packets_in += 1
    if data[1] == RTCP_SR and len(data) >= 20:
        seconds, fraction = struct.unpack_from("!II", data, 8)
        state.last_sr_ntp_middle = ((seconds & 0xFFFF) << 16) | (fraction >> 16)
        state.last_sr_at = now_mono


def _check(data: bytes) -> None:
    """RFC 3550 A.2: version 2, first packet SR or RR, lengths adding up to the datagram."""
    if len(data) < 8 or len(data) % 4:
        raise RtcpParseError("too short or not 32-bit aligned")
    if data[0] >> 6 != 2 or data[1] not in (RTCP_SR, RTCP_RR) or data[0] & 0x20:
        raise RtcpParseError("not a compound packet starting with SR or RR")
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4 or data[offset] >> 6 != 2:
            raise RtcpParseError("bad packet in compound")
        offset += (struct.unpack_from("!H", data, offset + 2)[0] + 1) * 4
    if offset != len(data):
        raise RtcpParseError("lengths do not add up")
