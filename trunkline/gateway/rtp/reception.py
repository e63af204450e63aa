"""An RTP session's inbound checks and reception statistics, sans I/O.

``RtpReceiver.receive(data, now)`` takes one datagram that came from the
session's source and says what it was:

- ``DROPPED``: not RTP, or a payload type that was not negotiated (counted as
  ``dropped_malformed`` or ``dropped_payload_type``; never latched onto);
- ``EVENT``: the negotiated RFC 4733 payload type: its payload, SSRC, sequence
  number and timestamp are kept for the session to decode (nothing counted yet:
  an event that does not decode is malformed);
- ``LATE``: audio without a jitter buffer that is a duplicate or older than the
  newest (``dropped_late``);
- ``AUDIO``: audio without a jitter buffer, in order: ``payload`` is to be
  played now;
- ``BUFFERED``: audio pushed into the jitter buffer, which re-orders it.

Audio is counted (``packets_in``, ``bytes_in``) and, unless it came out of
order, feeds the RFC 3550 statistics (A.1: extended highest sequence, cycles,
received; A.8: interarrival jitter) that ``reception()`` gives RTCP. A new SSRC
or a sequence jump beyond ``MAX_SEQUENCE_JUMP`` starts them again (a resync).

Given an ``arrival`` clock (``arrival.KernelArrival``: the socket's receive
timestamp), a packet in order whose transit time differs from the one before
by more than ``RETIME_SAMPLES`` (3 ms) is timed by it instead of ``now``
before it counts for the jitter statistics or reaches the jitter buffer:
when the event loop was busy, the packet waited in the socket, and that wait
is ours, not the network's jitter. Such packets are counted (``retimed``).

``PyRtpReceiver`` is the pure-Python twin of the C type
``trunkline._speedups.RtpReceiver`` (``trunkline/_rtp_core.c``), which does the
same in one call per packet and pushes into a C jitter buffer without a Python
call in between; ``RtpReceiver`` is the C type when the extension is in use.
``tests/rtp/test_reception_twins.py`` holds the two to the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trunkline import speedups
from trunkline.speedups import parse_rtp

DROPPED, EVENT, LATE, AUDIO, BUFFERED = range(5)
MAX_SEQUENCE_JUMP = 3000  # beyond this the stream restarted: resynchronise
MAX_TRANSIT_STEP = 8000 * 60  # a larger change of transit time is a timestamp jump
RETIME_SAMPLES = 24  # 3 ms of transit change (8 kHz units): ask the socket when it came


class PyRtpReceiver:
    """Header, payload type and order checks of one call's inbound RTP (see the module)."""

    __slots__ = (
        "_arrival",
        "_base_seq",
        "_cycles",
        "_event_payload_type",
        "_highest",
        "_jitter",
        "_jitter16",
        "_last_transit",
        "_payload_type",
        "_received",
        "_ssrc_in",
        "bytes_in",
        "dropped_late",
        "dropped_malformed",
        "dropped_payload_type",
        "lost",
        "packets_in",
        "payload",
        "resyncs",
        "retimed",
        "sequence",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        payload_type: int,
        event_payload_type: int | None,
        jitter: Any,
        arrival: Callable[[float], float] | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127 or not (
            event_payload_type is None or 0 <= event_payload_type <= 127
        ):
            raise ValueError("payload types are 0 to 127")
        self._payload_type = payload_type
        self._event_payload_type = event_payload_type
        self._jitter = jitter  # None: pass-through
        self._arrival = arrival  # when the datagram came, from the socket (None: ``now``)
        self.payload: memoryview | None = None
        self.ssrc = self.sequence = self.timestamp = 0
        self.packets_in = self.bytes_in = 0
        self.dropped_malformed = self.dropped_payload_type = self.dropped_late = 0
        self.lost = self.resyncs = self.retimed = 0
        self._ssrc_in: int | None = None
        self._highest = self._base_seq = self._cycles = self._received = 0
        self._jitter16 = 0  # interarrival jitter × 16, in RTP timestamp units
        self._last_transit: int | None = None

    def receive(self, data: bytes, now: float) -> int:
        """One datagram from the session's source, ``now`` in monotonic seconds."""
        try:  # the header's fields as a tuple: no packet object per datagram
            kind, _marker, sequence, timestamp, ssrc, payload = parse_rtp(data)
        except ValueError:
            self.dropped_malformed += 1
            return DROPPED
        if kind == self._event_payload_type:
            self.payload = payload
            self.ssrc, self.sequence, self.timestamp = ssrc, sequence, timestamp
            return EVENT
        if kind != self._payload_type:
            self.dropped_payload_type += 1
            return DROPPED
        self.packets_in += 1
        self.bytes_in += len(data)
        jitter = self._jitter
        in_order = self._in_order(ssrc, sequence)
        if not in_order and jitter is None:
            self.dropped_late += 1
            return LATE
        self._received += 1
        if in_order:
            transit = int(now * 8000) - timestamp
            last_transit = self._last_transit
            if last_transit is not None:
                d = abs(transit - last_transit)
                if d > RETIME_SAMPLES and self._arrival is not None:
                    arrived = self._arrival(now)
                    if arrived < now:  # it waited in the socket: time it by its arrival
                        now = arrived
                        self.retimed += 1
                        transit = int(now * 8000) - timestamp
                        d = abs(transit - last_transit)
                if d < MAX_TRANSIT_STEP:
                    self._jitter16 += d - ((self._jitter16 + 8) >> 4)
            self._last_transit = transit
        if jitter is None:
            self.payload = payload
            return AUDIO
        jitter.push(ssrc, sequence, timestamp, payload, now)  # re-ordered and paced there
        return BUFFERED

    def reception(self) -> tuple[int, int, int, int, int] | None:
        """(SSRC, extended highest sequence, expected, received, jitter) for an RTCP report
        block, or None before any audio."""
        if self._ssrc_in is None:
            return None
        extended = self._cycles + self._highest
        return (
            self._ssrc_in,
            extended,
            extended - self._base_seq + 1,
            self._received,
            self._jitter16 >> 4,
        )

    def _in_order(self, ssrc: int, sequence: int) -> bool:
        if ssrc != self._ssrc_in:
            if self._ssrc_in is not None:
                self.resyncs += 1
            self._ssrc_in = ssrc
            self._resync(sequence)
            return True
        delta = (sequence - self._highest) & 0xFFFF
        if delta == 0 or delta >= 0x8000:
            if (self._highest - sequence) & 0xFFFF > MAX_SEQUENCE_JUMP:
                self.resyncs += 1
                self._resync(sequence)
                return True
            return False  # duplicate, or older than what was already played
        if delta > MAX_SEQUENCE_JUMP:
            self.resyncs += 1
            self._resync(sequence)
            return True
        self.lost += delta - 1
        if sequence < self._highest:
            self._cycles += 1 << 16  # the 16-bit sequence number wrapped
        self._highest = sequence
        return True

    def _resync(self, sequence: int) -> None:
        """The stream (re)starts at ``sequence``: statistics start again (RFC 3550 A.1)."""
        self._highest = self._base_seq = sequence
        self._cycles = self._received = 0
        self._last_transit = None


if TYPE_CHECKING:
    RtpReceiver = PyRtpReceiver
else:
    RtpReceiver = PyRtpReceiver if speedups.RtpReceiver is None else speedups.RtpReceiver
