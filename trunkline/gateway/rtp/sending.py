"""An RTP session's outbound packetiser, sans I/O.

``RtpSender.next_frame(payload)`` is called once per 20 ms slot. Every slot
advances RTP time by 160 samples, silence included (``payload`` None: no
packet, and the next packet starts a talk spurt); a slot with audio gives a new
packet (RFC 3550 §5.1: version 2, no CSRCs) with the next sequence number and
the marker bit set when it starts a talk spurt (RFC 3551 §4.1), and counts it
(``packets_out``, ``bytes_out``, headers included). ``rewind(samples)`` moves
the next slot's RTP time back, when the media clock re-phased the call's slots
to go sooner than the 20 ms cadence; the next packet starts a talk spurt, so the
far end's jitter buffer does not take it for a late or overlapping frame.

Each packet is a new ``bytes`` object: a transport may keep it queued.

``PyRtpSender`` is the pure-Python twin of the C type
``trunkline._speedups.RtpSender`` (``trunkline/_rtp_core.c``); ``RtpSender``
is the C type when the extension is in use. ``tests/rtp/test_sending_twins.py``
holds the two to the same packets and counters.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from trunkline import speedups
from trunkline.speedups import Buffer

SAMPLES_PER_FRAME = 160
_HEADER = struct.Struct("!BBHII")
_LIMITS = {"payload_type": 127, "ssrc": 0xFFFFFFFF, "sequence": 0xFFFF, "timestamp": 0xFFFFFFFF}


class PyRtpSender:
    """Numbers, stamps and counts one call's outbound RTP packets (see the module)."""

    __slots__ = (
        "bytes_out",
        "packets_out",
        "payload_type",
        "sequence",
        "ssrc",
        "talking",
        "timestamp",
    )

    def __init__(self, payload_type: int, ssrc: int, sequence: int, timestamp: int) -> None:
        for name, value in zip(_LIMITS, (payload_type, ssrc, sequence, timestamp), strict=True):
            if not isinstance(value, int):
                raise TypeError(f"{name} must be an int")
            if not 0 <= value <= _LIMITS[name]:
                raise ValueError(f"{name} is out of range")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.sequence = sequence  # the next packet's
        self.timestamp = timestamp  # the next slot's
        self.talking = False  # the last slot carried audio: the next packet has no marker
        self.packets_out = self.bytes_out = 0

    def next_frame(self, payload: Buffer | None) -> bytes | None:
        """The packet for this 20 ms slot, or None for silence (time still advances)."""
        timestamp = self.timestamp
        if payload is None:
            self.timestamp = (timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF
            self.talking = False
            return None
        sequence = self.sequence
        marker = 0 if self.talking else 0x80
        header = _HEADER.pack(0x80, marker | self.payload_type, sequence, timestamp, self.ssrc)
        packet = b"".join((header, payload))
        self.timestamp = (timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        self.talking = True
        self.sequence = (sequence + 1) & 0xFFFF
        self.packets_out += 1
        self.bytes_out += len(packet)
        return packet

    def rewind(self, samples: int) -> None:
        """Move the next slot's RTP time back by ``samples``; its packet starts a talk spurt."""
        if not isinstance(samples, int):
            raise TypeError("rewind takes a number of samples")
        self.timestamp = (self.timestamp - samples) & 0xFFFFFFFF
        self.talking = False


if TYPE_CHECKING:
    RtpSender = PyRtpSender
else:
    RtpSender = PyRtpSender if speedups.RtpSender is None else speedups.RtpSender
