"""The carrier media-stream endpoints: ``/carrier/twilio/media-stream`` and
``/carrier/telnyx/media-stream`` on the HTTP port, up to the call's ``start``.

An upgrade is accepted only from the carrier: Twilio's is signed with
``X-Twilio-Signature`` over the stream URL and its ``start`` must carry the
stream token trunkline's TwiML gave that call (``twilio_voice``), used once;
Telnyx's carries the ``x-telnyx-streaming-auth-token`` header. No gateway
running → 503, draining → 503. Once the ``start`` frame arrives, the call is
run by ``carrier_streams.StreamCall`` over the gateway's call core.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

from aiohttp import WSMsgType, web

from trunkline import metrics
from trunkline.calls.control import CallControlSlot, Draining
from trunkline.config import Settings
from trunkline.gateway.call_control import GatewayCallControl
from trunkline.gateway.carrier_streams import StreamCall
from trunkline.gateway.carriers.media_stream import (
    CarrierStreamError,
    Dialect,
    StreamOther,
    StreamStart,
    parse_carrier_frame,
)
from trunkline.gateway.carriers.stream_tokens import (
    TOKEN_PARAMETER,
    StreamTokenError,
    UsedStreams,
    check_stream_token,
)
from trunkline.messaging.carrier_formats import SignatureError, verify_twilio

log = logging.getLogger("trunkline.carrier_stream")
START_WAIT_SECONDS = 10.0
TELNYX_TOKEN_HEADER = "x-telnyx-streaming-auth-token"


class CarrierStreamRoutes:
    """The two media-stream endpoints over the settings, the process's ``Draining`` flag
    and the slot where the running gateway's call control is found."""

    def __init__(
        self, settings: Settings, draining: Draining, call_control: CallControlSlot
    ) -> None:
        self._settings = settings
        self._draining = draining
        self._call_control = call_control
        self._used = UsedStreams()  # Twilio calls that have streamed already

    async def twilio(self, request: web.Request) -> web.StreamResponse:
        return await self.serve(request, "twilio")

    async def telnyx(self, request: web.Request) -> web.StreamResponse:
        return await self.serve(request, "telnyx")

    async def serve(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        settings = self._settings
        control = self._call_control.current
        if not isinstance(control, GatewayCallControl):
            return _detail(503, "The call gateway is not running")
        refusal = _refusal(request, settings, dialect)
        if refusal is not None:
            metrics.CARRIER_STREAMS_REFUSED.labels("unauthenticated").inc()
            return refusal
        if self._draining.active:
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
                _bind_twilio_stream(self._used, settings.carriers.twilio_auth_token, start)
            except StreamTokenError as exc:
                metrics.CARRIER_STREAMS_REFUSED.labels(exc.reason).inc()
                log.info("twilio stream refused: %s", exc)
                await ws.close(code=1008, message=str(exc).encode()[:120])
                return ws
        gateway = control.gateway
        call = StreamCall(
            gateway.core,
            gateway.number_store,
            gateway.call_store,
            gateway.rejected_calls,
            ws,
            transport,
            dialect,
            start,
        )
        await call.run()
        return ws


def _stream_url(settings: Settings, request: web.Request) -> str:
    base = settings.api.effective_public_url
    scheme, _, rest = base.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    return f"{ws_scheme}://{rest}{request.path_qs}"


def _refusal(request: web.Request, settings: Settings, dialect: Dialect) -> web.Response | None:
    """An error response when the upgrade is not the carrier's; None when it is."""
    if dialect == "twilio":
        if not settings.carriers.twilio_auth_token:
            return _detail(403, "Twilio media streams are refused: no Twilio auth token is set")
        try:
            verify_twilio(
                request.headers,
                _stream_url(settings, request),
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


def add_routes(
    app: web.Application, *, settings: Settings, draining: Draining, call_control: CallControlSlot
) -> None:
    routes = CarrierStreamRoutes(settings, draining, call_control)
    app.router.add_get("/carrier/twilio/media-stream", routes.twilio)
    app.router.add_get("/carrier/telnyx/media-stream", routes.telnyx)
