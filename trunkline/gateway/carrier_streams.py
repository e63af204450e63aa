"""Calls that arrive as carrier media streams: ``/carrier/twilio/media-stream`` and
``/carrier/telnyx/media-stream`` on the HTTP port.

The carrier connects a WebSocket, accepted by ``carrier_stream_routes``
(Twilio: upgrade signed with ``X-Twilio-Signature`` over the stream URL, and a
``start`` carrying the stream token trunkline's TwiML gave that call — see
``twilio_voice`` — used once; Telnyx: the ``x-telnyx-streaming-auth-token``
header). Its ``start`` frame names the dialled number (Telnyx ``start.to``;
Twilio ``customParameters.to``, set by trunkline's TwiML), which is routed
exactly like a SIP call, through the same flow (``calls.driver``): the
number's incoming-call action, the webhook, the agent dial with one retry, the
fallback agent, voicemail. ``StreamCall`` runs the call from its ``start``;
``CarrierSocketLeg`` is its leg. Audio is then bridged like RTP: the carrier's
frames feed the bridge from the socket reader; the shared 20 ms tick writes
each frame of agent audio straight to the socket's transport (no task per
frame; beyond 512 KB of unsent data frames are dropped and counted). The
carrier's ``stop`` or a closed socket ends the call (``remote``); the agent's
``stop`` closes the carrier's socket (``local``).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web
from websockets.frames import Frame, Opcode

from trunkline import metrics
from trunkline.calls.driver import CallCore
from trunkline.calls.flow_events import CallerHungUp
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.calls.live_call import LiveCall
from trunkline.calls.records import inbound_call_record, normalise_e164
from trunkline.calls.rejected_calls import RejectedCallRecords
from trunkline.calls.routing import load_inbound_route
from trunkline.gateway.carriers.media_stream import (
    CarrierAudio,
    CarrierStreamError,
    Dialect,
    Reorder,
    StreamDtmf,
    StreamMedia,
    StreamOther,
    StreamStart,
    StreamStop,
    media_frame,
    parse_carrier_frame,
)
from trunkline.media.session import MediaSession
from trunkline.storage.errors import CallLimitReached
from trunkline.storage.models import Call, PhoneNumber
from trunkline.storage.stores import CallStore, NumberStore

log = logging.getLogger("trunkline.carrier_stream")
MAX_UNSENT_BYTES = 512 * 1024


class CarrierSocketLeg:
    """The caller as a carrier media WebSocket: the call core's ``CallLeg`` and the bridge's
    caller leg. No ringing or SIP statuses: refusing the call closes the socket."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        dialect: Dialect,
        start: StreamStart,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.dialect = dialect
        self.stream_id = start.stream_id
        self.audio = CarrierAudio(start.encoding, start.sample_rate)
        self.reorder = Reorder(after=start.sequence)
        self.bridge: MediaSession | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.dropped_out = 0
        self.rejected = 0
        self._hung_up = False

    # -- carrier -> bridge (called from the socket reader) ------------------------------
    def receive(self, text: str) -> bool:
        """One text frame from the carrier; False once the carrier said ``stop``."""
        try:
            event = parse_carrier_frame(text, self.dialect)
        except CarrierStreamError as exc:
            self.reject_frame()
            log.debug("carrier frame rejected: %s", exc)
            return True
        bridge = self.bridge
        if isinstance(event, StreamMedia):
            self.frames_in += 1
            for payload in self.reorder.push(event.sequence, event.payload):
                audio = self.audio.to_mulaw(payload)
                if bridge is not None and audio:
                    bridge.caller_audio(audio)
        elif isinstance(event, StreamDtmf):
            self.reorder.push(event.sequence, None)
            if bridge is not None:
                bridge.caller_digit(event.digit)
        elif isinstance(event, StreamStop):
            return False
        elif isinstance(event, StreamOther):
            self.reorder.push(event.sequence, None)
        return True

    def reject_frame(self) -> None:
        """A frame trunkline could not use: dropped and counted, the call goes on."""
        self.rejected += 1
        metrics.CARRIER_FRAMES_REJECTED.labels(self.dialect).inc()

    # -- bridge -> carrier (called on the shared tick) -----------------------------------
    def send_frame(self, frame: bytes | None) -> None:
        if frame is None or self._hung_up or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            self.dropped_out += 1
            return
        text = media_frame(self.dialect, self.stream_id, self.audio.from_mulaw(frame))
        self.transport.write(Frame(Opcode.TEXT, text.encode()).serialize(mask=False))
        self.frames_out += 1

    def detach(self) -> None:
        if self.bridge is not None:  # once, when the call's media stops
            self.bridge = None
            dropped = metrics.CARRIER_FRAMES_DROPPED
            dropped.labels(self.dialect, "late").inc(self.reorder.dropped_late)
            dropped.labels(self.dialect, "unsent").inc(self.dropped_out)

    def rephased(self, earlier_seconds: float) -> None:
        return None  # the carrier paces playback itself; frames carry no timestamps

    def rtp_counters(self) -> dict[str, int]:
        return {}  # no RTP: the carrier's frames are counted under its own metrics

    # -- the call core's CallLeg ---------------------------------------------------------
    caller_codec = "PCMU"  # the socket's audio is turned into μ-law as it arrives

    def ring(self) -> None:
        return None

    async def open_media(self) -> None:
        return None

    def connect_media(self, bridge: MediaSession) -> None:
        bridge.caller = self
        self.bridge = bridge

    def answer(self) -> None:
        return None

    def reject(self, status: int, reason: str | None, retry_after: str | None) -> None:
        return None  # the call's run closes the socket ("no agent")

    def confirm_cancel(self) -> None:
        return None

    def refuse_ringing(self) -> None:
        self.hang_up()

    def close_media(self) -> None:
        return None

    def hang_up(self) -> None:
        if not self._hung_up:
            self._hung_up = True
            asyncio.get_running_loop().create_task(self.ws.close(message=b"call ended"))


class StreamCall:
    """One carrier media-stream call from ``start`` to its end."""

    def __init__(
        self,
        core: CallCore,
        numbers: NumberStore,
        calls: CallStore,
        rejected_calls: RejectedCallRecords,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        dialect: Dialect,
        start: StreamStart,
    ) -> None:
        self.core = core
        self.numbers = numbers
        self.calls = calls
        self.rejected_calls = rejected_calls
        self.ws = ws
        self.dialect = dialect
        self.start = start
        self.leg = CarrierSocketLeg(ws, transport, dialect, start)

    async def run(self) -> None:
        core, numbers = self.core, self.numbers
        dialled = normalise_e164(self.start.to_number)
        number = await numbers.find_active_number(dialled) if dialled else None
        if number is None:
            await self.ws.close(code=1008, message=b"unknown number")
            return
        if core.at_capacity(number.organization_id):  # this process's calls alone
            metrics.CALLS_AT_LIMIT.inc()
            await self.ws.close(code=1013, message=b"too many concurrent calls")  # try again later
            return
        route = await load_inbound_route(numbers, number)
        if route.rejects:
            await self.ws.close(code=1000, message=b"rejected")
            # Stored like a rejected SIP call: after the refusal, within the record rate.
            self.rejected_calls.record(number, self._call_record(number))
            return
        try:
            call = await self._live_call(number)
        except CallLimitReached:  # counted over every process sharing the database
            metrics.CALLS_AT_LIMIT.inc()
            await self.ws.close(code=1013, message=b"too many concurrent calls")
            return
        try:
            await core.ring_and_answer(call, route)
            if call.answered:
                await self._pump()
            else:
                await self.ws.close(code=1000, message=b"no agent")
        finally:
            await core.dispatch(call, CallerHungUp())

    def _call_record(self, number: PhoneNumber) -> Call:
        start = self.start
        carrier_call_id = f"{self.dialect}:{start.carrier_call_id}"
        return inbound_call_record(number, start.from_number, carrier_call_id)

    async def _live_call(self, number: PhoneNumber) -> LiveCall:
        start = self.start
        record = await self.calls.create_call(
            self._call_record(number), max_live_per_org=self.core.settings.calls.max_calls_per_org
        )
        lifecycle = CallLifecycle(record, self.calls, agent_identity_id=number.agent_identity_id)
        return LiveCall(
            leg_call_id=f"{self.dialect}:{start.carrier_call_id}:{record.id}",
            lifecycle=lifecycle,
            leg=self.leg,
            agent_protocol=number.agent_protocol,
            agent_audio=number.agent_audio,
            recording_enabled=number.recording_enabled,
        )

    async def _pump(self) -> None:
        """Read the carrier's frames until it stops, closes, or trunkline hangs up."""
        async for message in self.ws:
            if message.type == WSMsgType.TEXT:
                if not self.leg.receive(message.data):
                    break
            elif message.type == WSMsgType.BINARY:
                self.leg.reject_frame()
            else:
                break
        if not self.ws.closed:
            await self.ws.close()
