"""The WebSocket to the agent: websockets' sans-I/O client protocol on an asyncio.Protocol.

Sending is synchronous — the media tick and RTP callbacks call ``send_text``
(or ``send_binary``: raw audio, for an agent that accepted binary media) and
the bytes go straight into the transport — so no task or queue sits between a
caller's frame and the agent. Every frame to the agent (media, mark
echoes, transcripts, start/stop, and the pongs the protocol answers pings
with) goes through this one writer, and the transport's write buffer is its
bounded queue: a frame is written only while at most ``max_buffer_bytes`` are
unsent, so the buffer never holds more than the cap plus one frame. Past the
cap (the agent stopped reading) media frames are dropped and counted; any
other frame means the agent cannot keep up with the call at all, so the link
overflows — it stops reading and writing, ``on_overflow`` ends the call, and
``trunkline_agent_send_overflow_total`` counts it.

Receiving: websockets' protocol object reads the upgrade's response; from the
101 on the link reads the agent's frames itself (``agent.server_frames``, the
usual frame split out in C) and delivers messages by callback from
``data_received``. Control frames go back to the protocol object's own
methods, so its state stays the connection's: a ping is answered with
``send_pong``, the agent's close frame is echoed with ``send_close``, and a
frame that breaks RFC 6455 fails the connection with ``fail`` (1002, 1007 for
text that is not UTF-8, 1009 for a message over 1 MiB; counted in
``trunkline_agent_socket_failures_total``). Once a close frame has been sent
either way the agent has 2 s to close the TCP connection before it is
aborted. ``on_closed`` hears the code of the agent's close frame, or None when
the connection ended without one (a failed connection's included: what the
agent sends after the failure is not read). The host is resolved once through
the SSRF guard and the connection goes to the checked address, with the URL's
host for TLS.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidURI
from websockets.frames import Close, CloseCode, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from trunkline import metrics
from trunkline.agent.server_frames import Failed, Ping, ServerEvent, ServerFrameReader
from trunkline.speedups import MaskKeys, ws_client_frame
from trunkline.webhooks.ssrf import Lookup, resolve_target, system_lookup

log = logging.getLogger("trunkline.agent")
OP_BINARY = int(Opcode.BINARY)  # raw caller audio, for an agent that accepted it
DEFAULT_MAX_BUFFER_BYTES = 512 * 1024  # about 20 s of base64 μ-law in JSON
MAX_MESSAGE_BYTES = 1_048_576
CLOSING_SECONDS = 2.0  # after a close frame, for the agent to close the TCP connection
OP_TEXT = int(Opcode.TEXT)
END_OF_HEAD = b"\r\n\r\n"


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
        self.on_text = on_text  # re-pointed at the media session once bridged
        self.on_binary: Callable[[bytes], None] | None = None
        self.on_overflow: Callable[[], None] | None = None  # the bridge ends the call
        self._on_closed = on_closed
        self._max_buffer = max_buffer_bytes
        self._transport: asyncio.Transport | None = None
        self._opened: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._reader: ServerFrameReader | None = None  # from the 101 on
        self._head_tail = b""  # the last bytes of the response so far (its end may straddle)
        self._close_received: Close | None = None
        self._closed = False
        self.lost = False  # the connection has ended (``on_closed`` was called)
        self.close_code: int | None = None  # the agent's close code; None: no close frame
        self.response_headers: dict[str, str] = {}
        self.frames_in = 0
        self.frames_out = 0
        self.dropped_frames = 0
        self.overflowed = False
        self.peak_buffered_bytes = 0  # the most ever left unsent after a write
        self._masks = MaskKeys()

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
        reader = self._reader
        if reader is None:
            self._receive_handshake(data)
            return
        for event in reader.receive(data):
            if isinstance(event, str):
                self.frames_in += 1
                self.on_text(event)
            elif isinstance(event, bytes):
                self.frames_in += 1
                if self.on_binary is not None:
                    self.on_binary(event)  # raw audio in the agent's format
            else:
                self._control(event)
        if self._protocol.writes:
            self._flush(bounded=True)  # pongs and close replies

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self._opened.done():
            self._opened.set_exception(AgentConnectError(f"connection lost: {exc}"))
        if not self._closed:
            self._closed = True
            self.lost = True
            received = self._close_received  # None: no close frame (a reset, a crash)
            self.close_code = received.code if received is not None else None
            self._on_closed(self.close_code, received.reason if received is not None else "")

    # -- receiving ----------------------------------------------------------------
    def _receive_handshake(self, data: bytes) -> None:
        """The protocol object reads the response; frames after a 101 are the reader's."""
        protocol = self._protocol
        seen = self._head_tail + data
        end = seen.find(END_OF_HEAD)
        if end < 0:
            self._head_tail = seen[-len(END_OF_HEAD) + 1 :]
            head, rest = data, b""
        else:  # the response's head ends in this chunk (a 101 has no body)
            split = end + len(END_OF_HEAD) - len(self._head_tail)
            head, rest = data[:split], data[split:]
        protocol.receive_data(head)
        self._protocol_events()
        if protocol.state is State.OPEN:
            self._reader = ServerFrameReader(MAX_MESSAGE_BYTES)
            if rest:
                self.data_received(rest)
            return
        if rest:  # a refused upgrade's body
            protocol.receive_data(rest)
            self._protocol_events()
        self._flush(bounded=True)
        if protocol.state is State.CLOSED and self._transport is not None:
            self._transport.close()

    def _protocol_events(self) -> None:
        for event in self._protocol.events_received():
            if isinstance(event, Response):
                self._handshake(event)

    def _handshake(self, response: Response) -> None:
        if self._opened.done():
            return
        failure = self._protocol.handshake_exc
        if failure is not None:
            self._opened.set_exception(AgentConnectError(f"agent refused the upgrade: {failure}"))
            return
        self.response_headers = {k.lower(): v for k, v in response.headers.raw_items()}
        self._opened.set_result(response)

    def _control(self, event: ServerEvent) -> None:
        """A control frame, or the reader's verdict, through the protocol object's methods."""
        protocol = self._protocol
        if isinstance(event, Ping):
            if protocol.state is State.OPEN or protocol.state is State.CLOSING:
                protocol.send_pong(event.payload)
        elif isinstance(event, Close):
            self._close_received = event
            if protocol.state is State.OPEN:  # echoed (RFC 6455 §5.5.1); 1005: no code to echo
                if event.code == CloseCode.NO_STATUS_RCVD:
                    protocol.send_close()
                else:
                    protocol.send_close(event.code, event.reason)
            self._abort_later()
        elif isinstance(event, Failed):
            metrics.AGENT_SOCKET_FAILURES.labels(str(event.code)).inc()
            log.warning("failing the agent's WebSocket: %d %s", event.code, event.reason)
            protocol.fail(event.code, event.reason)
            self._abort_later()
        # A pong needs no answer.

    def _abort_later(self) -> None:
        """The agent closes the TCP connection after the close frames, or it is aborted."""
        asyncio.get_running_loop().call_later(CLOSING_SECONDS, self.abort)

    # -- sending ------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self._transport is not None and self._protocol.state is State.OPEN

    @property
    def buffered_bytes(self) -> int:
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    @property
    def has_room(self) -> bool:
        """Unsent data is within the cap: one more frame may be written."""
        return self.buffered_bytes <= self._max_buffer

    def send_text(self, text: str | bytes, *, droppable: bool = False) -> bool:
        """Queue one text frame (``str``, or its UTF-8 ``bytes``) within the cap; False when
        it was not sent.

        Past the cap media (``droppable``) is dropped and counted; any other
        frame overflows the link. The frame is built here (``speedups.ws_client_frame``,
        a pooled mask key) rather than by the protocol object, which owns the
        handshake, control frames, receiving and closing: it is only ever OPEN
        here, with no fragmented message or extension in play, and anything it
        queued is written first.
        """
        return self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text, droppable)

    def send_binary(self, data: bytes | memoryview, *, droppable: bool = False) -> bool:
        """Queue one binary frame (raw audio, for an agent that accepted binary media)
        within the cap, as ``send_text`` does; False when it was not sent."""
        return self.send_frame(OP_BINARY, data, droppable)

    def send_frame(self, opcode: int, data: bytes | memoryview, droppable: bool) -> bool:
        """``send_text`` (``OP_TEXT``, UTF-8 bytes) or ``send_binary`` (``OP_BINARY``), for
        a caller that knows which: the media path, once per frame."""
        # ``open`` and ``has_room``, inline: this runs for every frame to the agent
        transport = self._transport
        if transport is None or self._protocol.state is not State.OPEN or self.overflowed:
            return False
        if transport.get_write_buffer_size() > self._max_buffer:
            if droppable:
                self.dropped_frames += 1
            else:
                self._overflow()
            return False
        protocol = self._protocol
        if protocol.expect_continuation_frame or protocol.extensions:
            # not a state this link gets into; framed by the book
            if opcode == OP_TEXT:
                protocol.send_text(bytes(data))
            else:
                protocol.send_binary(bytes(data))
            self._flush()
        else:
            if protocol.writes:
                self._flush()  # what the protocol queued goes first, in order
                if self._transport is None:
                    return False
            transport.write(ws_client_frame(opcode, data, self._masks.next()))
        self.frames_out += 1
        if self._transport is not None:
            buffered = self._transport.get_write_buffer_size()
            if buffered > self.peak_buffered_bytes:
                self.peak_buffered_bytes = buffered
        return True

    def _overflow(self) -> None:
        """The agent stopped reading and trunkline has more than media to tell it."""
        if self.overflowed:
            return
        self.overflowed = True
        metrics.AGENT_SEND_OVERFLOWS.inc()
        log.warning("agent is not reading: %d bytes unsent", self.buffered_bytes)
        if self._transport is not None:
            self._transport.pause_reading()  # nothing it sends now can be answered
        if self.on_overflow is not None:
            self.on_overflow()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._transport is None:
            return
        if self.overflowed:  # a closing handshake would queue behind what it never read
            self.abort()
            return
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            self._flush()
        self._abort_later()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _flush(self, *, bounded: bool = False) -> None:
        """Write what the protocol has queued; ``bounded``: only within the cap."""
        transport = self._transport
        if transport is None:
            return
        for data in self._protocol.data_to_send():
            if self.overflowed or (
                bounded
                and self._protocol.state is State.OPEN
                and transport.get_write_buffer_size() > self._max_buffer
            ):
                self._overflow()
                return  # not written: the link is done
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        buffered = transport.get_write_buffer_size()
        if buffered > self.peak_buffered_bytes:
            self.peak_buffered_bytes = buffered

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
