"""The UDP side of a call's RTP: a datagram protocol feeding the session by callback,
its RTCP companion on the next port up, and an allocator of even ports from the
configured range. On an SRTP call (``srtp`` set) packets are unprotected as they
arrive and protected as they leave, here at the socket, so the session sees RTP."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from typing import Protocol, cast

from trunkline.gateway.rtp.arrival import KernelArrival
from trunkline.gateway.rtp.rtcp import RtcpState, receive_report
from trunkline.gateway.rtp.session import RtpSession
from trunkline.gateway.rtp.srtp import SrtpContext

MAX_DATAGRAM = 2048


class RtcpEndpoint(asyncio.DatagramProtocol):
    """The RTCP socket (RTP port + 1): reports in are checked and counted, reports out sent."""

    def __init__(self) -> None:
        self.state = RtcpState()
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None  # learned from the first valid report
        self.srtp: SrtpContext | None = None  # SRTCP on an SRTP call

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > MAX_DATAGRAM:
            self.state.dropped_malformed += 1
            return
        if self.srtp is not None:
            clear = self.srtp.unprotect_rtcp(data)
            if clear is None:
                return  # counted by the SRTP context
            data = clear
        before = self.state.packets_in
        receive_report(data, self.state, time.monotonic())
        if self.remote is None and self.state.packets_in > before:
            self.remote = (addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        return None

    def send(self, packet: bytes, rtp_remote: tuple[str, int]) -> None:
        """To the learned RTCP source, else the RTP peer's port + 1 (RFC 3550 §11)."""
        if self.transport is not None:
            if self.srtp is not None:
                packet = self.srtp.protect_rtcp(packet)
            self.transport.sendto(packet, self.remote or (rtp_remote[0], rtp_remote[1] + 1))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class RtpEndpoint(asyncio.DatagramProtocol):
    """One bound RTP socket. Each datagram goes straight to the session (no task, no queue)."""

    def __init__(self) -> None:
        self.session: RtpSession | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.rtcp: RtcpEndpoint | None = None
        self.srtp: SrtpContext | None = None  # set on an SRTP call (SDES keys)
        # When the datagram being handled came in (``rtp.arrival``); None on a shared port.
        self.arrival: KernelArrival | None = None
        self.dropped_unattached = 0
        self.dropped_oversized = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not a subclass of asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        session = self.session
        if session is None:
            self.dropped_unattached += 1
            return
        if len(data) > MAX_DATAGRAM:
            self.dropped_oversized += 1
            return
        if self.srtp is not None:
            clear = self.srtp.unprotect(data)
            if clear is None:
                return  # failed authentication or a replay: counted by the SRTP context
            data = clear
        session.receive(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable and friends
        return None

    def send(self, packet: bytes) -> None:
        session, transport = self.session, self.transport
        if session is None or transport is None or session.remote is None:
            return
        # A packet of its own (immutable): the transport may queue it (the kernel pushed
        # back) without a copy.
        srtp = self.srtp
        transport.sendto(srtp.protect(packet) if srtp is not None else packet, session.remote)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send_rtcp(self, packet: bytes) -> None:
        session = self.session
        if self.rtcp is not None and session is not None and session.remote is not None:
            self.rtcp.send(packet, session.remote)

    def move(self, remote: tuple[str, int]) -> bool:
        """The far end's media now comes from ``remote`` (a re-INVITE): False when this
        endpoint cannot take it (a shared port where another call has that source)."""
        return True

    def secure(self, srtp: SrtpContext | None) -> None:
        """Protect this call's RTP and RTCP with ``srtp`` (None: plain RTP)."""
        self.srtp = srtp
        if self.rtcp is not None:
            self.rtcp.srtp = srtp

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.rtcp is not None:
            self.rtcp.close()


QUARANTINE_SECONDS = 10.0


class PortsExhausted(Exception):
    """Every RTP port of the range is in use (the call is answered 503)."""


class SharedPorts(Protocol):
    """The worker's shared RTP port (``shared_port.SharedMediaPorts``)."""

    def open(self, source: tuple[str, int], ssrc: int | None) -> RtpEndpoint | None: ...
    def dropped(self) -> dict[str, int]: ...
    def receive_buffer_bytes(self) -> int: ...
    def bind(self) -> None: ...
    def close(self) -> None: ...


class RtpPortAllocator:
    """Binds RTP sockets on even ports of [low, high]; at most one call per port.

    A released port rests for ``quarantine_seconds`` before it is handed out
    again, so late packets of the call that used it cannot reach the next one;
    resting ports are used (oldest first) only when no other port is free.
    With ``shared`` ports, a call whose media source is known and can be told
    from the others there is put on them instead (``shared_port``).
    """

    def __init__(
        self,
        host: str,
        low: int,
        high: int,
        quarantine_seconds: float = QUARANTINE_SECONDS,
        *,
        shared: SharedPorts | None = None,
    ) -> None:
        if low > high:
            raise ValueError("empty RTP port range")
        self.host = host
        self.quarantine_seconds = quarantine_seconds
        # Even RTP ports whose odd neighbour (RTCP) is in the range too.
        self._ports = [p for p in range(low + (low % 2), high, 2)]
        self._in_use: set[int] = set()
        self._released_at: dict[int, float] = {}  # at most one entry per port of the range
        self.exhausted = 0
        self._exhausted_since_release = False  # the last open() found nothing bindable
        self.shared = shared

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    @property
    def free(self) -> int:
        """Port pairs not carrying a call (resting ones included: they serve when needed)."""
        return len(self._ports) - len(self._in_use)

    @property
    def at_capacity(self) -> bool:
        """No call can get a port now: every pair carries a call, or the last attempt found
        none it could bind (ports held by other processes count) and none was released since."""
        return self.free == 0 or self._exhausted_since_release

    async def open(
        self, source: tuple[str, int] | None = None, ssrc: int | None = None
    ) -> RtpEndpoint:
        """A port pair for a call; on the shared ports when ``source`` (its SDP's media
        address, with the SSRC it declared, if any) can be routed there."""
        if self.shared is not None and source is not None:
            endpoint = self.shared.open(source, ssrc)
            if endpoint is not None:
                return endpoint
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        resting = {
            port: at for port, at in self._released_at.items() if now - at < self.quarantine_seconds
        }
        free = [p for p in self._ports if p not in self._in_use and p not in resting]
        start = secrets.randbelow(len(free)) if free else 0
        candidates = free[start:] + free[:start]
        candidates += sorted((p for p in resting if p not in self._in_use), key=resting.__getitem__)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for port in candidates:
            endpoint = RtpEndpoint()
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda endpoint=endpoint: endpoint,  # type: ignore[misc]
                    local_addr=(self.host, port),
                    family=family,
                )
            except OSError:
                continue  # taken by another process: try the next
            endpoint.transport = transport  # uvloop calls connection_made a turn later
            endpoint.arrival = KernelArrival.of(transport)
            rtcp = RtcpEndpoint()
            try:
                rtcp_transport, _ = await loop.create_datagram_endpoint(
                    lambda rtcp=rtcp: rtcp,  # type: ignore[misc]
                    local_addr=(self.host, port + 1),
                    family=family,
                )
            except OSError:
                endpoint.close()  # RTCP's port is taken: the pair is not usable
                continue
            rtcp.transport = rtcp_transport
            endpoint.rtcp = rtcp
            self._in_use.add(port)
            self._released_at.pop(port, None)
            return endpoint
        self.exhausted += 1
        self._exhausted_since_release = True
        raise PortsExhausted(f"no free RTP port in {self._ports[:1]}..{self._ports[-1:]}")

    def shared_dropped(self) -> dict[str, int]:
        """Datagrams the shared ports dropped, by reason (none without them)."""
        return self.shared.dropped() if self.shared is not None else {}

    def release(self, endpoint: RtpEndpoint) -> None:
        if endpoint.transport is not None and endpoint.port in self._in_use:
            self._in_use.discard(endpoint.port)
            self._released_at[endpoint.port] = time.monotonic()
            self._exhausted_since_release = False
        endpoint.close()
