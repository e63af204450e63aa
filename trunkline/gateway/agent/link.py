"""The WebSocket to the agent: websockets' sans-I/O client protocol on an asyncio.Protocol.

Sending is synchronous — the media tick and RTP callbacks call ``send_text``
and the bytes go straight into the transport — so no task or queue sits
between a caller's frame and the agent. The transport's write buffer is the
bounded outgoing queue: past ``max_buffer_bytes`` (the agent stopped reading)
media frames are dropped and counted instead of growing memory, and control
frames still go out. Received frames are delivered by callback from
``data_received``. The host is resolved once through the SSRF guard and the
connection goes to the checked address, with the URL's host for TLS.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from trunkline.webhooks.ssrf import Lookup, resolve_target, system_lookup

log = logging.getLogger("trunkline.agent")
DEFAULT_MAX_BUFFER_BYTES = 512 * 1024  # about 20 s of base64 μ-law in JSON
MAX_MESSAGE_BYTES = 1_048_576


class AgentConnectError(Exception):
    """The agent could not be reached or refused the WebSocket upgrade."""


class AgentLink(asyncio.Protocol):
    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        on_text: Callable[[str], None],
        on_closed: Callable[[int | None, str], None],
        *,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    ) -> None:
        try:
            self._protocol = ClientProtocol(parse_uri(url), max_size=MAX_MESSAGE_BYTES)
        except InvalidURI as exc:
            raise AgentConnectError(f"invalid agent URL: {exc}") from None
        self._headers = dict(headers)
        self._on_text = on_text
        self.on_binary: Callable[[bytes], None] | None = None
        self._on_closed = on_closed
        self._max_buffer = max_buffer_bytes
        self._transport: asyncio.Transport | None = None
        self._opened: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._closed = False
        self.response_headers: dict[str, str] = {}
        self.frames_in = 0
        self.frames_out = 0
        self.dropped_frames = 0

    # -- asyncio.Protocol ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not a subclass of asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        request = self._protocol.connect()
        for name, value in self._headers.items():
            request.headers[name] = value
        self._protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Response):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()
        if self._protocol.state is State.CLOSED and self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self._opened.done():
            self._opened.set_exception(AgentConnectError(f"connection lost: {exc}"))
        if not self._closed:
            self._closed = True
            code = self._protocol.close_code
            self._on_closed(code, self._protocol.close_reason or "")

    # -- protocol events ------------------------------------------------------------
    def _handshake(self, response: Response) -> None:
        if self._opened.done():
            return
        failure = self._protocol.handshake_exc
        if failure is not None:
            self._opened.set_exception(AgentConnectError(f"agent refused the upgrade: {failure}"))
            return
        self.response_headers = {k.lower(): v for k, v in response.headers.raw_items()}
        self._opened.set_result(response)

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT:
            self.frames_in += 1
            try:
                text = bytes(frame.data).decode("utf-8")
            except UnicodeDecodeError:
                return  # the protocol layer already fails invalid UTF-8
            self._on_text(text)
        elif frame.opcode is Opcode.BINARY:
            self.frames_in += 1
            if self.on_binary is not None:
                self.on_binary(bytes(frame.data))  # raw audio in the agent's format
        # Pings are answered by the protocol object itself; CLOSE ends the connection.

    # -- sending ------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self._transport is not None and self._protocol.state is State.OPEN

    @property
    def buffered_bytes(self) -> int:
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    def send_text(self, text: str, *, droppable: bool = False) -> bool:
        """Queue one text frame; media (``droppable``) is dropped when the agent lags."""
        if not self.open:
            return False
        if droppable and self.buffered_bytes > self._max_buffer:
            self.dropped_frames += 1
            return False
        self._protocol.send_text(text.encode())
        self.frames_out += 1
        self._flush()
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._transport is None:
            return
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            self._flush()
        asyncio.get_running_loop().call_later(2.0, self.abort)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()

    async def wait_open(self) -> Response:
        return await asyncio.shield(self._opened)


async def connect_agent(
    url: str,
    headers: Mapping[str, str],
    on_text: Callable[[str], None],
    on_closed: Callable[[int | None, str], None],
    *,
    allow_private: bool,
    connect_seconds: float = 5.0,
    lookup: Lookup = system_lookup,
    ssl_context: ssl.SSLContext | None = None,
) -> AgentLink:
    """Open the agent WebSocket (resolved once, checked, TLS by the URL's host)."""
    try:
        target = await resolve_target(url, allow_private=allow_private, lookup=lookup)
    except Exception as exc:
        raise AgentConnectError(str(exc)) from None
    if target.scheme not in ("ws", "wss"):
        raise AgentConnectError("the agent URL must be ws:// or wss://")
    link = AgentLink(url, headers, on_text, on_closed)
    secure = target.scheme == "wss"
    context = (ssl_context or ssl.create_default_context()) if secure else None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(connect_seconds):
            await loop.create_connection(
                lambda: link,
                host=target.address,
                port=target.port,
                ssl=context,
                server_hostname=target.host if secure else None,
            )
            await link.wait_open()
    except (OSError, TimeoutError, InvalidHandshake, ssl.SSLError) as exc:
        link.abort()
        raise AgentConnectError(f"agent unreachable: {type(exc).__name__}: {exc}") from None
    except AgentConnectError:
        link.abort()
        raise
    return link
