"""RTP packets (RFC 3550 §5.1): parse without copying the payload, build into a reused buffer."""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_BYTES = 12
_HEADER = struct.Struct("!BBHII")


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
    view = memoryview(data)
    if len(view) < HEADER_BYTES:
        raise RtpParseError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(view)
    if first >> 6 != 2:
        raise RtpParseError("not RTP version 2")
    offset = HEADER_BYTES + 4 * (first & 0x0F)
    end = len(view)
    if first & 0x10:  # header extension
        if end < offset + 4:
            raise RtpParseError("truncated header extension")
        words = int.from_bytes(view[offset + 2 : offset + 4], "big")
        offset += 4 + 4 * words
    if first & 0x20:  # padding
        padding = view[end - 1]
        if padding == 0 or end - padding < offset:
            raise RtpParseError("bad padding length")
        end -= padding
    if offset > end:
        raise RtpParseError("header longer than the packet")
    return RtpPacket(
        second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, view[offset:end]
    )


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
    _HEADER.pack_into(
        buffer,
        0,
        0x80,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )
    buffer[HEADER_BYTES:size] = payload
    return memoryview(buffer)[:size]


def build_packet(payload: bytes, **fields: int | bool) -> bytes:
    buffer = bytearray(HEADER_BYTES + len(payload))
    return bytes(build_into(buffer, payload, **fields))  # type: ignore[arg-type]
