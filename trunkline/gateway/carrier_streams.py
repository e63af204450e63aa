"""Calls that arrive as carrier media streams: ``/carrier/twilio/media-stream`` and
``/carrier/telnyx/media-stream`` on the HTTP port.

The carrier connects a WebSocket (Twilio: upgrade signed with
``X-Twilio-Signature`` over the stream URL, and a ``start`` carrying the
stream token trunkline's TwiML gave that call — see ``twilio_voice`` — used
once; Telnyx: the ``x-telnyx-streaming-auth-token`` header). Its ``start``
frame names the dialled number (Telnyx ``start.to``; Twilio
``customParameters.to``, set by trunkline's TwiML), which is routed
exactly like a SIP call, through the same flow (``calls.driver``): the
number's incoming-call action, the webhook, the agent dial with one retry, the
fallback agent, voicemail. ``CarrierSocketLeg`` is the call's leg. Audio is then bridged like
RTP: the carrier's frames feed the bridge from the socket reader; the shared
20 ms tick writes each frame of agent audio straight to the socket's
transport (no task per frame; beyond 512 KB of unsent data frames are dropped
and counted). The carrier's ``stop`` or a closed socket ends the call
(``remote``); the agent's ``stop`` closes the carrier's socket (``local``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

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
from trunkline.gateway.call_control import GatewayCallControl
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
from trunkline.gateway.carriers.stream_tokens import (
    TOKEN_PARAMETER,
    StreamTokenError,
    UsedStreams,
    check_stream_token,
)
from trunkline.media.session import MediaSession
from trunkline.messaging.carrier_formats import SignatureError, verify_twilio
from trunkline.services import SERVICES, Services
from trunkline.storage.models import Call, PhoneNumber
from trunkline.storage.repository import Repository

log = logging.getLogger("trunkline.carrier_stream")
START_WAIT_SECONDS = 10.0
MAX_UNSENT_BYTES = 512 * 1024
TELNYX_TOKEN_HEADER = "x-telnyx-streaming-auth-token"
USED_TWILIO_STREAMS: web.AppKey[UsedStreams] = web.AppKey("used_twilio_streams", UsedStreams)


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
    caller_alaw = False  # the socket's audio is turned into μ-law as it arrives

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


def _stream_url(services: Services, request: web.Request) -> str:
    base = services.settings.api.effective_public_url
    scheme, _, rest = base.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    return f"{ws_scheme}://{rest}{request.path_qs}"


def _refusal(request: web.Request, services: Services, dialect: Dialect) -> web.Response | None:
    """An error response when the upgrade is not the carrier's; None when it is."""
    settings = services.settings
    if dialect == "twilio":
        if not settings.carriers.twilio_auth_token:
            return _detail(403, "Twilio media streams are refused: no Twilio auth token is set")
        try:
            verify_twilio(
                request.headers,
                _stream_url(services, request),
                [],
                settings.carriers.twilio_auth_token,
            )
        except SignatureError as exc:
            return _detail(403, str(exc))
        return None
    if not settings.carriers.telnyx_stream_token:
        return _detail(403, "Telnyx media streams are refused: no stream token is set")
    presented = request.headers.get(TELNYX_TOKEN_HEADER, "")
    if not hmac.compare_digest(presented.encode(), settings.carriers.telnyx_stream_token.encode()):
        return _detail(403, "Telnyx streaming auth token does not match")
    return None


def _detail(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


def _bind_twilio_stream(used: UsedStreams, auth_token: str, start: StreamStart) -> None:
    """The ``start`` carries this call's unexpired token and the call has not streamed yet."""
    now = time.time()
    expires = check_stream_token(
        start.custom.get(TOKEN_PARAMETER),
        auth_token,
        start.carrier_call_id,
        start.to_number or "",
        start.from_number or "",
        now,
    )
    used.claim(start.carrier_call_id, expires, now)


async def _read_start(ws: web.WebSocketResponse, dialect: Dialect) -> StreamStart | None:
    async with asyncio.timeout(START_WAIT_SECONDS):
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                return None
            try:
                event = parse_carrier_frame(message.data, dialect)
            except CarrierStreamError:
                return None
            if isinstance(event, StreamStart):
                return event
            if not isinstance(event, StreamOther):  # only "connected" may come first
                return None
    return None


async def serve_stream(request: web.Request, dialect: Dialect) -> web.StreamResponse:
    services: Services = request.app[SERVICES]
    control = services.call_control
    if not isinstance(control, GatewayCallControl):
        return _detail(503, "The call gateway is not running")
    refusal = _refusal(request, services, dialect)
    if refusal is not None:
        metrics.CARRIER_STREAMS_REFUSED.labels("unauthenticated").inc()
        return refusal
    if services.draining:
        return _detail(503, "Draining: not accepting new calls")
    ws = web.WebSocketResponse(compress=False, max_msg_size=1_048_576, heartbeat=30.0)
    await ws.prepare(request)
    transport = request.transport
    try:
        start = await _read_start(ws, dialect)
    except TimeoutError:
        start = None
    if start is None or transport is None:
        await ws.close(code=1008, message=b"expected a start frame")
        return ws
    if dialect == "twilio":
        try:
            _bind_twilio_stream(
                request.app[USED_TWILIO_STREAMS],
                services.settings.carriers.twilio_auth_token,
                start,
            )
        except StreamTokenError as exc:
            metrics.CARRIER_STREAMS_REFUSED.labels(exc.reason).inc()
            log.info("twilio stream refused: %s", exc)
            await ws.close(code=1008, message=str(exc).encode()[:120])
            return ws
    gateway = control.gateway
    call = StreamCall(gateway.core, services.repository, gateway.rejected_calls, ws, transport,
                      dialect, start)  # fmt: skip
    await call.run()
    return ws


class StreamCall:
    """One carrier media-stream call from ``start`` to its end."""

    def __init__(
        self,
        core: CallCore,
        repository: Repository,
        rejected_calls: RejectedCallRecords,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        dialect: Dialect,
        start: StreamStart,
    ) -> None:
        self.core = core
        self.repository = repository
        self.rejected_calls = rejected_calls
        self.ws = ws
        self.dialect = dialect
        self.start = start
        self.leg = CarrierSocketLeg(ws, transport, dialect, start)

    async def run(self) -> None:
        core, repository = self.core, self.repository
        dialled = normalise_e164(self.start.to_number)
        number = await repository.find_active_number(dialled) if dialled else None
        if number is None:
            await self.ws.close(code=1008, message=b"unknown number")
            return
        if core.at_capacity(number.organization_id):
            await self.ws.close(code=1013, message=b"too many concurrent calls")  # try again later
            return
        route = await load_inbound_route(repository, number)
        if route.rejects:
            await self.ws.close(code=1000, message=b"rejected")
            # Stored like a rejected SIP call: after the refusal, within the record rate.
            self.rejected_calls.record(number, self._call_record(number))
            return
        call = await self._live_call(number)
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
        repository = self.repository
        record = await repository.create_call(self._call_record(number))
        lifecycle = CallLifecycle(record, repository, agent_identity_id=number.agent_identity_id)
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


async def twilio_media_stream(request: web.Request) -> web.StreamResponse:
    return await serve_stream(request, "twilio")


async def telnyx_media_stream(request: web.Request) -> web.StreamResponse:
    return await serve_stream(request, "telnyx")


def add_routes(app: web.Application) -> None:
    app[USED_TWILIO_STREAMS] = UsedStreams()
    app.router.add_get("/carrier/twilio/media-stream", twilio_media_stream)
    app.router.add_get("/carrier/telnyx/media-stream", telnyx_media_stream)
