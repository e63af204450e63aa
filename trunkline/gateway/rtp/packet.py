"""RTP packets (RFC 3550 §5.1): parse without copying the payload, build into a reused buffer.

The byte work is ``trunkline.speedups`` (C, or its pure-Python twin).
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.speedups import build_rtp_into, parse_rtp

HEADER_BYTES = 12


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


def build_into(
    buffer: bytearray,
    payload: bytes | memoryview,
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    marker: bool = False,
) -> memoryview:
    """Write header and payload into ``buffer`` (grown only if too small); returns the packet."""
    size = HEADER_BYTES + len(payload)
    if len(buffer) < size:
        buffer.extend(bytes(size - len(buffer)))
    build_rtp_into(buffer, payload, payload_type, sequence, timestamp, ssrc, marker)
    return memoryview(buffer)[:size]


def build_packet(payload: bytes, **fields: int | bool) -> bytes:
    buffer = bytearray(HEADER_BYTES + len(payload))
    return bytes(build_into(buffer, payload, **fields))  # type: ignore[arg-type]
