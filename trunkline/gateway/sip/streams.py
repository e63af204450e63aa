"""SIP over TCP or TLS (RFC 3261 §18): a listener, its connections, and sending on them.

``SipStreams`` is a thin asyncio transport around the sans-I/O core: each
connection's bytes go through a ``StreamFramer`` and every complete message
is handed to ``on_message`` (the ``SipEndpoint``) with the connection's peer
as the source and the ``SipStreams`` itself as the transport it came on.
Responses and requests go back with ``sendto(data, peer)``, on the connection
to that peer: the one a request came in on, or one opened by ``connect`` for
an outbound call. Nothing is retransmitted over a stream (the transactions
know it is reliable).

Limits: at most ``max_connections`` connections (more are closed as they
arrive), messages of at most ``max_message_bytes``, a connection that carried
nothing for ``idle_seconds`` is closed, and so is one whose unsent output
passes ``MAX_WRITE_BUFFER`` (a peer that does not read). Each closing is
counted by reason in ``trunkline_sip_connections_closed_total`` and the open
connections are the ``trunkline_sip_connections`` gauge.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import cast

from trunkline import metrics
from trunkline.gateway.sip.framer import FramingError, StreamFramer
from trunkline.gateway.sip.message import MAX_MESSAGE_BYTES

log = logging.getLogger("trunkline.sip")
SipAddress = tuple[str, int]
MAX_WRITE_BUFFER = 256 * 1024  # unsent bytes a connection may hold before it is dropped
HANDSHAKE_SECONDS = 10.0
CONNECT_SECONDS = 10.0
MessageHandler = Callable[[bytes, SipAddress, "SipStreams"], None]


class StreamConnectError(Exception):
    """A connection to a peer could not be opened (refused, unreachable, TLS verification)."""


class _Connection(asyncio.Protocol):
    """One TCP or TLS connection: bytes in are framed into messages, messages out written."""

    def __init__(self, streams: SipStreams) -> None:
        self.streams = streams
        self.framer = StreamFramer(streams.max_message_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer: SipAddress = ("", 0)
        self.last_active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        self.last_active = self.streams.now()
        self.streams.opened(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.streams.now()
        try:
            messages = self.framer.feed(data)
        except FramingError as exc:
            log.debug("SIP %s stream from %s unusable: %s", self.streams.name, self.peer, exc)
            self.close("framing")
            return
        for message in messages:
            self.streams.on_message(message, self.peer, self.streams)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.streams.lost(self)
        self.transport = None

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        self.last_active = self.streams.now()
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.close("write_buffer")

    def close(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            metrics.SIP_CONNECTIONS_CLOSED.labels(self.streams.label, reason).inc()
            self.transport.close()


class SipStreams:
    """SIP over one stream transport (``name`` "TCP" or "TLS") for one process."""

    def __init__(
        self,
        name: str,
        on_message: MessageHandler,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        max_connections: int = 1024,
        idle_seconds: float = 3600.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.name = name
        self.label = name.lower()
        self.on_message = on_message
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.max_connections = max_connections
        self.idle_seconds = idle_seconds
        self.max_message_bytes = max_message_bytes
        self.connections: dict[SipAddress, _Connection] = {}
        self.local_address: SipAddress | None = None
        self.unsendable = 0  # messages for a peer with no open connection
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def secure(self) -> bool:
        return self.name == "TLS"

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- listening and connecting --------------------------------------------------------
    async def listen(self, host: str, port: int, *, shared: bool = False) -> SipAddress:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            ssl=self.server_ssl,
            ssl_handshake_timeout=HANDSHAKE_SECONDS if self.server_ssl is not None else None,
            reuse_port=shared or None,
        )
        sockname = self._server.sockets[0].getsockname()
        self.local_address = (str(sockname[0]), int(sockname[1]))
        self._arm_sweeper()
        return self.local_address

    async def connect(self, address: SipAddress, server_hostname: str) -> None:
        """Make sure a connection to ``address`` is open (reused when it is)."""
        if address in self.connections:
            return
        loop = asyncio.get_running_loop()
        secure = self.secure
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self),
                    address[0],
                    address[1],
                    ssl=self.client_ssl if secure else None,
                    server_hostname=server_hostname if secure else None,
                    ssl_handshake_timeout=HANDSHAKE_SECONDS if secure else None,
                ),
                CONNECT_SECONDS,
            )
        except ssl.SSLCertVerificationError as exc:
            raise StreamConnectError(
                f"TLS certificate of {server_hostname} not trusted: {exc.verify_message}"
            ) from exc
        except ssl.SSLError as exc:
            raise StreamConnectError(f"TLS handshake with {server_hostname} failed: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise StreamConnectError(
                f"{self.name} connection to {address[0]}:{address[1]} failed: {exc or 'timeout'}"
            ) from exc
        self._arm_sweeper()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self.connections.values()):
            connection.close("shutdown")

    # -- the transport the endpoint sends with -------------------------------------------
    def sendto(self, data: bytes, addr: SipAddress | None = None) -> None:
        """Send one message to ``addr`` on its connection (dropped, counted, if none)."""
        connection = self.connections.get(addr) if addr is not None else None
        if connection is None:
            self.unsendable += 1
            log.debug("no SIP %s connection to %s: message dropped", self.name, addr)
            return
        connection.write(data)

    def has_connection(self, address: SipAddress) -> bool:
        return address in self.connections

    # -- bookkeeping ---------------------------------------------------------------------
    def opened(self, connection: _Connection) -> None:
        if len(self.connections) >= self.max_connections:
            connection.close("limit")
            return
        old = self.connections.get(connection.peer)
        if old is not None:
            old.close("replaced")
        self.connections[connection.peer] = connection
        metrics.SIP_CONNECTIONS.labels(self.label).inc()

    def lost(self, connection: _Connection) -> None:
        if self.connections.get(connection.peer) is connection:
            del self.connections[connection.peer]
            metrics.SIP_CONNECTIONS.labels(self.label).dec()

    def _arm_sweeper(self) -> None:
        if self._sweeper is None:
            interval = max(1.0, self.idle_seconds / 4)
            self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Close the connections that carried nothing for ``idle_seconds``."""
        self._sweeper = None
        cutoff = self.now() - self.idle_seconds
        for connection in list(self.connections.values()):
            if connection.last_active < cutoff:
                connection.close("idle")
        if self._server is not None or self.connections:
            self._arm_sweeper()


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """The TLS listener's context: our certificate, TLS 1.2 or later."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def client_context(ca_file: str, cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """Outbound TLS: the trunk's certificate verified against ``ca_file`` (system CAs if
    empty) and its host name; our certificate presented when one is configured."""
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file and key_file:
        context.load_cert_chain(cert_file, key_file)
    return context
