"""RTP packets (RFC 3550 §5.1): parse without copying the payload, build as a new packet.

The byte work is ``trunkline.speedups`` (C, or its pure-Python twin).
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.speedups import build_rtp, parse_rtp


class RtpParseError(ValueError):
    """A datagram that is not a usable RTP packet."""


@dataclass(slots=True)
class RtpPacket:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: memoryview


def parse_packet(data: bytes | memoryview) -> RtpPacket:
    try:
        return RtpPacket(*parse_rtp(data))
    except ValueError as exc:
        raise RtpParseError(*exc.args) from None


def build_packet(
    payload: bytes | memoryview,
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    marker: bool = False,
) -> bytes:
    """A new packet: the header and ``payload``."""
    return build_rtp(payload, payload_type, sequence, timestamp, ssrc, marker)
