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
at each talk-spurt start: an ``RtpSender``'s (``gateway/rtp/sending.py``), whose
``next_frame`` the session hands out as its own (one C call per slot with the
extension). Every drop is counted by reason.
The per-packet checks after the source's (header, payload type, order, RFC 3550
statistics, the jitter buffer push) are an ``RtpReceiver``'s
(``gateway/rtp/reception.py``): one C call per packet with the extension.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from trunkline.codecs.dtmf import TelephoneEvent, TelephoneEventError, decode_event
from trunkline.gateway.rtp.jitter import JitterBuffer
from trunkline.gateway.rtp.reception import AUDIO, BUFFERED, EVENT, LATE, RtpReceiver
from trunkline.gateway.rtp.rtcp import ReceptionStats
from trunkline.gateway.rtp.sending import RtpSender
from trunkline.speedups import Buffer

LEARN_GRACE_SECONDS = 1.0  # silence from the SDP address before another source may be learned
Address = tuple[str, int]


@dataclass(slots=True)
class RtpCounters:
    """A session's counters (``RtpSession.counters``: a snapshot)."""

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
    retimed: int = 0  # out of step, so timed by the socket's receive stamp (``rtp.arrival``)
    dtmf_events: int = 0


class RtpSession:
    """Per-call inbound filter and outbound packetiser."""

    __slots__ = (
        "_dropped_foreign_source",
        "_dropped_unconfirmed_source",
        "_dtmf_events",
        "_ended_event",
        "_first_foreign",
        "_learned",
        "_clock",
        "_receiver",
        "_sender",
        "event_payload_type",
        "jitter",
        "next_frame",
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
        arrival: Callable[[float], float] | None = None,
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
        # header, payload type and order checks, reception statistics, the jitter buffer push
        # (``arrival``: when a datagram came, from its socket — ``rtp.arrival``)
        self._receiver = RtpReceiver(payload_type, event_payload_type, jitter, arrival)
        self._dropped_foreign_source = self._dropped_unconfirmed_source = 0
        self._dtmf_events = 0
        self.ssrc = secrets.randbits(32)
        # outbound: a random first sequence number and timestamp (RFC 3550 §5.1)
        self._sender = sender = RtpSender(
            payload_type, self.ssrc, secrets.randbits(16), secrets.randbits(32)
        )
        # The packet for this 20 ms slot, or None for silence (time still advances).
        self.next_frame: Callable[[Buffer | None], bytes | None] = sender.next_frame
        self._learned = False
        self._ended_event: tuple[int, int] | None = None

    @property
    def learned_source(self) -> Address | None:
        return self.remote if self._learned else None

    # -- inbound -----------------------------------------------------------------
    def receive(self, data: bytes, source: Address) -> None:
        """One datagram from ``source``."""
        if source != self.remote:
            if self._learned:
                self._dropped_foreign_source += 1
                return
            if not self._may_learn(source, self._clock()):
                self._dropped_unconfirmed_source += 1
                return
        receiver = self._receiver
        outcome = receiver.receive(data, self._clock())
        if outcome == BUFFERED:  # the usual packet: in the jitter buffer now
            if not self._learned:
                self._latch(source)
            on_buffered = self.on_buffered
            if on_buffered is not None:
                on_buffered()  # played on arrival, if it can be, else pulled on its tick
        elif outcome == AUDIO:
            if not self._learned:
                self._latch(source)
            assert receiver.payload is not None
            self.on_audio(receiver.payload)
        elif outcome == EVENT:
            self._receive_event(len(data), source)
        elif outcome == LATE and not self._learned:
            self._latch(source)

    def _latch(self, source: Address) -> None:
        self.remote = source
        self._learned = True

    def _receive_event(self, size: int, source: Address) -> None:
        """An RFC 4733 packet: a digit once, at its first end packet, as it arrives."""
        receiver = self._receiver
        assert receiver.payload is not None
        try:
            event = decode_event(receiver.payload)
        except TelephoneEventError:
            receiver.dropped_malformed += 1  # counted once, and never latched onto
            return
        if not self._learned:
            self._latch(source)
        receiver.packets_in += 1
        receiver.bytes_in += size
        if self.jitter is not None:
            self.jitter.push_event(receiver.ssrc, receiver.sequence)
        self._event(receiver.ssrc, receiver.timestamp, event)

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
        reception = self._receiver.reception()
        if reception is None:
            return None
        ssrc, extended, expected, received, jitter = reception
        return ReceptionStats(
            ssrc=ssrc,
            extended_highest=extended,
            expected=expected,
            received=received,
            jitter=jitter,
        )

    @property
    def counters(self) -> RtpCounters:
        """A snapshot of the session's counters (the receiver keeps the inbound ones)."""
        receiver, sender = self._receiver, self._sender
        return RtpCounters(
            packets_in=receiver.packets_in,
            packets_out=sender.packets_out,
            bytes_in=receiver.bytes_in,
            bytes_out=sender.bytes_out,
            dropped_malformed=receiver.dropped_malformed,
            dropped_foreign_source=self._dropped_foreign_source,
            dropped_unconfirmed_source=self._dropped_unconfirmed_source,
            dropped_payload_type=receiver.dropped_payload_type,
            dropped_late=receiver.dropped_late,
            lost=receiver.lost,
            resyncs=receiver.resyncs,
            retimed=receiver.retimed,
            dtmf_events=self._dtmf_events,
        )

    @property
    def out_timestamp(self) -> int:
        return self._sender.timestamp

    def _event(self, ssrc: int, timestamp: int, event: TelephoneEvent) -> None:
        if not event.end or self._ended_event == (ssrc, timestamp):
            return  # the digit is reported once, at its first end packet
        self._ended_event = (ssrc, timestamp)
        self._dtmf_events += 1
        self.on_dtmf(event.digit)

    # -- outbound ----------------------------------------------------------------
    def rewind(self, samples: int) -> None:
        """Move outbound RTP time back (the next slot comes sooner than 20 ms).

        The next packet carries the marker bit, so the far end's jitter buffer
        treats it as a new talk spurt rather than a late or overlapping frame.
        """
        self._sender.rewind(samples)
