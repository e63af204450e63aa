"""The test caller's transport: one SIP dialog and one RTP stream over UDP, paced by 20 ms ticks.

``place_call`` dials a number on a SIP server (trunkline, a carrier, sipp),
using trunkline's own sans-I/O cores: ``OutboundInvite`` for the dialog (INVITE,
ACK, BYE, CANCEL) and ``ClientTransaction`` for retransmissions. Once answered
it sends ``CallerMedia``'s packet every 20 ms on an anchored schedule
(``start + n * 20 ms``, so pacing never drifts), records what comes back and
hangs up after the call's length, unless the far end sends BYE first. One call,
bounded in time (answer timeout, call length, 4 s for the BYE's answer) and in
memory (the recording's capacity is fixed up front).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message, response_to
from trunkline.gateway.sip.parse_error import SipParseError
from trunkline.gateway.sip.sdp import SdpError, build_sdp, parse_sdp
from trunkline.gateway.sip.transaction import ClientTransaction, Datagram
from trunkline.gateway.sip.uac import Answered, Failed, OutboundInvite, Resend
from trunkline.testcall.audio import FRAME_BYTES, load_wav_frames, write_wav
from trunkline.testcall.media import TELEPHONE_EVENT, CallerMedia, call_script
from trunkline.testcall.summary import CallSummary

log = logging.getLogger("trunkline.testcall")
TICK_SECONDS = 0.02
BYE_WAIT_SECONDS = 4.0
CANCEL_WAIT_SECONDS = 4.0
TAIL_SECONDS = 2.0  # past the scripted audio, so its echo can come back
MIN_SECONDS = 5.0
MAX_SECONDS = 3600.0
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class CallOptions:
    number: str
    host: str
    port: int
    from_number: str = "+15550109999"
    bind: str = "127.0.0.1"
    play: Path | None = None
    record: Path | None = None
    dtmf: str = ""
    seconds: float | None = None  # None: long enough for the script, at least MIN_SECONDS
    answer_timeout: float = 30.0


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, Address], None]) -> None:
        self.handler = handler

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.handler(data, (addr[0], addr[1]))


async def _bind(bind: str, handler: Callable[[bytes, Address], None]) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Datagrams(handler), local_addr=(bind, 0)
    )
    return transport


def _host_in_uri(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class TestCall:
    """One test call from start to summary; ``run`` once."""

    __test__ = False  # not a pytest test class

    def __init__(
        self, options: CallOptions, play: list[bytes], hang_up: asyncio.Event | None = None
    ) -> None:
        self.options = options
        self.hang_up = hang_up or asyncio.Event()  # set: hang up now instead of at the end
        script = call_script(play, options.dtmf)
        if options.seconds is not None:
            seconds = options.seconds
        else:
            seconds = max(MIN_SECONDS, len(script) * TICK_SECONDS + TAIL_SECONDS)
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"--seconds must be more than 0 and at most {MAX_SECONDS:.0f}")
        self.call_ticks = round(seconds / TICK_SECONDS)
        # What can come back in the call: one frame per tick, with room for a burst.
        self.media = CallerMedia(
            script,
            record_frames=self.call_ticks + 500,
            ssrc=secrets.randbits(32),
            sequence=secrets.randbits(16),
            timestamp=secrets.randbits(32),
        )
        self.summary = CallSummary(options.number, f"{options.host}:{options.port}")
        self._target: Address = (options.host, options.port)
        self._sip: asyncio.DatagramTransport | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self._dialog: OutboundInvite | None = None
        self._transactions: dict[str, ClientTransaction] = {}
        self._remote_media: Address | None = None
        self._final = asyncio.Event()  # the INVITE got its final answer, or gave up
        self._remote_bye = asyncio.Event()
        self._bye_answered = asyncio.Event()

    @property
    def call_id(self) -> str | None:
        """The SIP Call-ID of the call, once it is dialled."""
        return self._dialog.call_id if self._dialog is not None else None

    async def run(self) -> CallSummary:
        options = self.options
        loop = asyncio.get_running_loop()
        try:
            self._sip = await _bind(options.bind, self._sip_received)
            self._rtp = await _bind(options.bind, self._rtp_received)
            await self._dial()
            if self.summary.answered:
                answered_at = loop.time()
                await self._talk()
                self.summary.seconds = loop.time() - answered_at
            elif self._dialog is not None and self._dialog.answered:  # and hung up at once
                await self._wait_ticking(self._bye_answered, BYE_WAIT_SECONDS)
        finally:
            for transport in (self._sip, self._rtp):
                if transport is not None:
                    transport.close()
        self._finish()
        return self.summary

    # -- signalling ------------------------------------------------------------

    async def _dial(self) -> None:
        options = self.options
        assert self._sip is not None and self._rtp is not None
        sip_port = int(self._sip.get_extra_info("sockname")[1])
        rtp_port = int(self._rtp.get_extra_info("sockname")[1])
        local = _host_in_uri(options.bind)
        offer = build_sdp(options.bind, rtp_port, [0], event_payload_type=TELEPHONE_EVENT)
        self._dialog = OutboundInvite(
            request_uri=f"sip:{options.number}@{_host_in_uri(options.host)}:{options.port}",
            from_number=options.from_number,
            to_number=options.number,
            via_host=local,
            via_port=sip_port,
            contact=f"<sip:caller@{local}:{sip_port}>",
            offer=offer,
            destination=self._target,
        )
        self._start(self._dialog.invite())
        if not await self._wait_ticking(self._final, options.answer_timeout, also=self.hang_up):
            self._start(self._dialog.cancel())
            await self._wait_ticking(self._final, CANCEL_WAIT_SECONDS)
            if self.hang_up.is_set():
                self.summary.reason = "hung up before the answer; cancelled"
            else:
                self.summary.reason = f"no answer within {options.answer_timeout:.0f} s; cancelled"
            self.summary.status = None
            if self.summary.answered:  # answered while the CANCEL was on its way
                self._hang_up()
                await self._wait_ticking(self._bye_answered, BYE_WAIT_SECONDS)
                self.summary.answered = False

    def _start(self, request: SipRequest) -> None:
        transaction = ClientTransaction(
            request, self._target, self._on_response, lambda: self._on_timeout(request.method)
        )
        self._transactions[request.top_via.branch or ""] = transaction
        self._send(transaction.start(self._now()))

    def _on_timeout(self, method: str) -> None:
        if method == "INVITE" and not self._final.is_set():
            self.summary.reason = f"no response from {self.summary.target}"
            self._final.set()
        elif method == "BYE":
            self._bye_answered.set()

    def _on_response(self, response: SipResponse) -> None:
        assert self._dialog is not None
        method = response.cseq[1]
        if method == "BYE" and response.status >= 200:
            self._bye_answered.set()
        if method != "INVITE" or self._final.is_set():
            return
        step = self._dialog.on_response(response)
        if isinstance(step, Resend):
            self._start(step.invite)
        elif isinstance(step, Answered):
            self._answered(response, step)
        elif isinstance(step, Failed):
            self.summary.status, self.summary.reason = step.status, step.reason
            self._final.set()

    def _answered(self, response: SipResponse, step: Answered) -> None:
        self.summary.status, self.summary.reason = response.status, response.reason
        self._send_ack(step.ack)
        try:
            answer = parse_sdp(step.sdp)
        except SdpError as exc:
            self.summary.reason = f"answered with unusable SDP ({exc})"
            self._hang_up()
        else:
            self._remote_media = (answer.address, answer.port)
            self.summary.answered = True
        self._final.set()

    def _send_ack(self, ack: SipRequest) -> None:
        assert self._sip is not None
        self._sip.sendto(ack.serialize(), self._target)

    def _hang_up(self) -> None:
        assert self._dialog is not None
        self._start(self._dialog.bye())

    def _sip_received(self, data: bytes, source: Address) -> None:
        try:
            message = parse_message(data)
        except SipParseError:
            return  # keep-alives and garbage
        if isinstance(message, SipResponse):
            self._response_received(message)
        else:
            self._request_received(message, source)

    def _response_received(self, response: SipResponse) -> None:
        try:
            branch = response.top_via.branch or ""
        except SipParseError:
            return
        dialog = self._dialog
        if (
            dialog is not None
            and dialog.answered
            and response.cseq[1] == "INVITE"
            and 200 <= response.status < 300
        ):
            self._send_ack(dialog.ack())  # a retransmitted 2xx: our ACK was lost
            return
        transaction = self._transactions.get(branch)
        if transaction is not None:
            self._send(transaction.on_message(response, self._now()))

    def _request_received(self, request: SipRequest, source: Address) -> None:
        assert self._sip is not None
        dialog = self._dialog
        ours = dialog is not None and request.call_id == dialog.call_id
        if request.method == "ACK":
            return
        if request.method == "BYE" and ours:
            self.summary.hung_up_by = self.summary.hung_up_by or "trunkline"
            reply = response_to(request, 200)
            self._remote_bye.set()
        elif request.method == "OPTIONS":
            reply = response_to(request, 200)
        elif not ours:
            reply = response_to(request, 481)
        else:
            reply = response_to(request, 488 if request.method == "INVITE" else 501)
        self._sip.sendto(reply.serialize(), source)

    # -- media -----------------------------------------------------------------

    def _rtp_received(self, data: bytes, source: Address) -> None:
        self.media.receive(data, self._now())

    async def _talk(self) -> None:
        """Send one packet per tick until the call's length or the far end's BYE."""
        assert self._rtp is not None and self._remote_media is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        for tick in range(self.call_ticks):
            if self._remote_bye.is_set():
                return
            if self.hang_up.is_set():
                break
            self._fire_timers(loop.time())
            self._rtp.sendto(self.media.tick(loop.time()), self._remote_media)
            delay = start + (tick + 1) * TICK_SECONDS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        self.summary.hung_up_by = "caller"
        self._hang_up()
        await self._wait_ticking(self._bye_answered, BYE_WAIT_SECONDS)

    # -- time --------------------------------------------------------------------

    async def _wait_ticking(
        self, event: asyncio.Event, seconds: float, also: asyncio.Event | None = None
    ) -> bool:
        """Wait up to ``seconds`` for ``event`` (or ``also``), firing the SIP timers every tick;
        whether ``event`` is set."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not event.is_set() and loop.time() < deadline:
            if also is not None and also.is_set():
                break
            self._fire_timers(loop.time())
            await asyncio.sleep(TICK_SECONDS)
        return event.is_set()

    def _fire_timers(self, now: float) -> None:
        for branch, transaction in list(self._transactions.items()):
            self._send(transaction.fire(now))
            if transaction.done:
                del self._transactions[branch]

    def _send(self, datagrams: list[Datagram]) -> None:
        assert self._sip is not None
        for datagram in datagrams:
            self._sip.sendto(datagram.data, datagram.address)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _finish(self) -> None:
        summary = self.summary
        summary.counts = self.media.counts
        if self.media.round_trip is not None:
            summary.round_trip_ms = self.media.round_trip * 1000
        if summary.answered and self.options.record is not None:
            summary.recording = self.options.record
            summary.recording_seconds = len(self.media.recording) / FRAME_BYTES * TICK_SECONDS


async def place_call(options: CallOptions, hang_up: asyncio.Event | None = None) -> CallSummary:
    """Dial ``options.number``, play, record, hang up; the summary of what happened.

    Setting ``hang_up`` ends an answered call at the next tick (a BYE), before
    its length is up.

    Raises AudioFileError for a ``play`` file it cannot use and ValueError for
    bad options, before anything is sent.
    """
    play: list[bytes] = []
    if options.play is not None:
        play = await asyncio.to_thread(load_wav_frames, options.play)
    call = TestCall(options, play, hang_up)
    summary = await call.run()
    if summary.recording is not None:
        await asyncio.to_thread(write_wav, summary.recording, bytes(call.media.recording))
    return summary
