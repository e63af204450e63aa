"""One call's RTP endpoint logic, sans I/O: what to accept and what to send.

Inbound: the SDP's connection address and port are preferred. The session
latches onto the first valid packet of a negotiated payload type that comes
from an acceptable source, and drops packets from any other source afterwards
(RTP bleed). Acceptable before latching: the SDP address; another port on the
SDP's host or on the host that sent the signalling (a NAT rewrote it:
symmetric RTP); any other source only once the SDP address has sent nothing
for ``LEARN_GRACE_SECONDS`` after the first packet from elsewhere (a NAT the
SDP does not reveal). Packets refused before latching are counted apart from
those refused after it. Payload
types that were not negotiated are dropped. Audio goes to the call's
``JitterBuffer`` when it has one (re-ordered there; ``on_buffered`` is told
after each push, so a frame can be played as it arrives, else it is pulled on
its 20 ms tick);
without one (pass-through) it goes straight to ``on_audio`` as it comes, and
duplicates and packets older than the newest seen are dropped here.
RFC 4733 events become a digit once, on the first end packet of each event,
as they arrive: they never wait in the jitter buffer.
Outbound: 160-sample frames with a random SSRC, continuous sequence numbers,
timestamps that advance by 160 every 20 ms even across silence, and a marker
at each talk-spurt start. Every drop is counted by reason.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from trunkline.codecs.dtmf import TelephoneEvent, TelephoneEventError, decode_event
from trunkline.gateway.rtp.jitter import JitterBuffer
from trunkline.gateway.rtp.rtcp import ReceptionStats
from trunkline.speedups import build_rtp, parse_rtp

SAMPLES_PER_FRAME = 160
MAX_SEQUENCE_JUMP = 3000  # beyond this the stream restarted: resynchronise
LEARN_GRACE_SECONDS = 1.0  # silence from the SDP address before another source may be learned
Address = tuple[str, int]


@dataclass(slots=True)
class RtpCounters:
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped_malformed: int = 0
    dropped_foreign_source: int = 0
    dropped_unconfirmed_source: int = 0  # before latching, from a source not yet acceptable
    dropped_payload_type: int = 0
    dropped_late: int = 0
    lost: int = 0
    resyncs: int = 0
    dtmf_events: int = 0


class RtpSession:
    """Per-call inbound filter and outbound packetiser."""

    __slots__ = (
        "_ended_event",
        "_first_foreign",
        "_highest",
        "_learned",
        "_out_seq",
        "_out_ts",
        "_base_seq",
        "_clock",
        "_cycles",
        "_jitter16",
        "_last_transit",
        "_received",
        "_ssrc_in",
        "_talking",
        "counters",
        "event_payload_type",
        "jitter",
        "on_audio",
        "on_buffered",
        "on_dtmf",
        "payload_type",
        "remote",
        "signalling_host",
        "ssrc",
    )

    def __init__(
        self,
        payload_type: int,
        event_payload_type: int | None,
        on_audio: Callable[[memoryview], None],
        on_dtmf: Callable[[str], None],
        *,
        remote: Address | None = None,
        signalling_host: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: JitterBuffer | None = None,
        on_buffered: Callable[[], None] | None = None,
    ) -> None:
        self.payload_type = payload_type
        self.jitter = jitter  # None: pass-through, audio goes to on_audio as it arrives
        self.on_buffered = on_buffered  # after each audio packet goes into the jitter buffer
        self._clock = clock  # monotonic seconds: source learning and jitter
        self.event_payload_type = event_payload_type
        self.on_audio = on_audio
        self.on_dtmf = on_dtmf
        self.remote = remote  # the SDP address until a valid packet from elsewhere is learned
        self.signalling_host = signalling_host  # the SIP peer's host (same NAT as its media)
        self._first_foreign: float | None = None  # when a packet first came from elsewhere
        self.counters = RtpCounters()
        self.ssrc = secrets.randbits(32)
        self._out_seq = secrets.randbits(16)
        self._out_ts = secrets.randbits(32)
        self._talking = False
        self._learned = False
        self._ssrc_in: int | None = None
        self._highest: int | None = None
        self._ended_event: tuple[int, int] | None = None
        # Reception statistics for RTCP (RFC 3550 A.1, A.8).
        self._base_seq = 0
        self._cycles = 0
        self._received = 0
        self._jitter16 = 0  # interarrival jitter × 16, in RTP timestamp units
        self._last_transit: int | None = None

    @property
    def learned_source(self) -> Address | None:
        return self.remote if self._learned else None

    # -- inbound -----------------------------------------------------------------
    def receive(self, data: bytes, source: Address) -> None:
        """One datagram from ``source``."""
        counters = self.counters
        if source != self.remote:
            if self._learned:
                counters.dropped_foreign_source += 1
                return
            if not self._may_learn(source, self._clock()):
                counters.dropped_unconfirmed_source += 1
                return
        try:  # the header's fields as a tuple: no packet object per datagram
            kind, _marker, sequence, timestamp, ssrc, payload = parse_rtp(data)
        except ValueError:
            counters.dropped_malformed += 1
            return
        event: TelephoneEvent | None = None
        if kind == self.event_payload_type:
            try:
                event = decode_event(payload)
            except TelephoneEventError:
                counters.dropped_malformed += 1  # counted once, and never latched onto
                return
        elif kind != self.payload_type:
            counters.dropped_payload_type += 1
            return
        if not self._learned:
            self.remote = source
            self._learned = True
        counters.packets_in += 1
        counters.bytes_in += len(data)
        jitter = self.jitter
        if event is not None:
            if jitter is not None:
                jitter.push_event(ssrc, sequence)
            self._event(ssrc, timestamp, event)
            return
        in_order = self._in_order(ssrc, sequence)
        if not in_order and jitter is None:
            counters.dropped_late += 1
            return
        self._received += 1
        now = self._clock()
        if in_order:
            transit = int(now * 8000) - timestamp
            last_transit = self._last_transit
            if last_transit is not None:
                d = abs(transit - last_transit)
                if d < 8000 * 60:  # not a timestamp jump
                    self._jitter16 += d - ((self._jitter16 + 8) >> 4)
            self._last_transit = transit
        if jitter is None:
            self.on_audio(payload)
        else:  # re-ordered, de-duplicated and paced there; played on arrival or pulled
            jitter.push(ssrc, sequence, timestamp, payload, now)
            on_buffered = self.on_buffered
            if on_buffered is not None:
                on_buffered()

    def _may_learn(self, source: Address, now: float) -> bool:
        """Whether a packet from ``source``, not the SDP address, may be latched onto."""
        remote = self.remote
        if remote is None or remote[0] in ("0.0.0.0", "::") or remote[1] == 0:
            return True  # the SDP named no usable address
        if source[0] == remote[0] or source[0] == self.signalling_host:
            return True  # the same host from another port: a NAT rewrote it
        if self._first_foreign is None:
            self._first_foreign = now
        return now - self._first_foreign >= LEARN_GRACE_SECONDS

    def reception_stats(self) -> ReceptionStats | None:
        """What an RTCP report block says about the caller's stream (None before any)."""
        if self._ssrc_in is None or self._highest is None:
            return None
        extended = self._cycles + self._highest
        return ReceptionStats(
            ssrc=self._ssrc_in,
            extended_highest=extended,
            expected=extended - self._base_seq + 1,
            received=self._received,
            jitter=self._jitter16 >> 4,
        )

    @property
    def out_timestamp(self) -> int:
        return self._out_ts

    def _in_order(self, ssrc: int, sequence: int) -> bool:
        if ssrc != self._ssrc_in or self._highest is None:
            if self._ssrc_in is not None:
                self.counters.resyncs += 1
            self._ssrc_in = ssrc
            self._highest = self._base_seq = sequence
            self._cycles = self._received = 0
            self._last_transit = None
            return True
        delta = (sequence - self._highest) & 0xFFFF
        if delta == 0 or delta >= 0x8000:
            if (self._highest - sequence) & 0xFFFF > MAX_SEQUENCE_JUMP:
                self._resync(sequence)
                return True
            return False  # duplicate, or older than what was already played
        if delta > MAX_SEQUENCE_JUMP:
            self._resync(sequence)
            return True
        self.counters.lost += delta - 1
        if sequence < self._highest:
            self._cycles += 1 << 16  # the 16-bit sequence number wrapped
        self._highest = sequence
        return True

    def _resync(self, sequence: int) -> None:
        """The sender restarted its sequence: statistics start again (RFC 3550 A.1)."""
        self.counters.resyncs += 1
        self._highest = self._base_seq = sequence
        self._cycles = self._received = 0
        self._last_transit = None

    def _event(self, ssrc: int, timestamp: int, event: TelephoneEvent) -> None:
        if not event.end or self._ended_event == (ssrc, timestamp):
            return  # the digit is reported once, at its first end packet
        self._ended_event = (ssrc, timestamp)
        self.counters.dtmf_events += 1
        self.on_dtmf(event.digit)

    # -- outbound ----------------------------------------------------------------
    def rewind(self, samples: int) -> None:
        """Move outbound RTP time back (the next slot comes sooner than 20 ms).

        The next packet carries the marker bit, so the far end's jitter buffer
        treats it as a new talk spurt rather than a late or overlapping frame.
        """
        self._out_ts = (self._out_ts - samples) & 0xFFFFFFFF
        self._talking = False

    def next_frame(self, payload: bytes | memoryview | None) -> bytes | None:
        """The packet for this 20 ms slot, or None for silence (time still advances)."""
        timestamp = self._out_ts
        self._out_ts = (timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        if payload is None:
            self._talking = False
            return None
        marker = not self._talking
        self._talking = True
        packet = build_rtp(payload, self.payload_type, self._out_seq, timestamp, self.ssrc, marker)
        self._out_seq = (self._out_seq + 1) & 0xFFFF
        counters = self.counters
        counters.packets_out += 1
        counters.bytes_out += len(packet)
        return packet
