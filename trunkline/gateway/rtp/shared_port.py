"""One UDP port carrying many calls' RTP (and one more their RTCP), told apart by source.

With ``TRUNKLINE_RTP_SHARED_PORT`` set, an inbound call whose media comes from
the address its SDP names is answered on the worker's shared port instead of a
port pair of its own. The event loop then wakes once for whatever datagrams
are waiting on that port, not once per packet per call: a wake-up drains up to
64 of them in one system call (``recvmmsg``) and routes each by its source
address to its call's ``RtpEndpoint``; the datagrams the calls send in one loop
iteration leave together in one ``sendmmsg``. (Without the C extension, or off
Linux, the same batches are read and sent a system call per datagram.)

Routing is strict, because a datagram routed to the wrong call is another
caller's audio:
- a call's source is the (address, port) of its SDP, known before it is
  answered; one that is not an IP literal of the port's family, or that is
  another call's without both calls declaring their SSRC (``a=ssrc``,
  RFC 5576), gets a port pair of its own as before (``open`` returns None);
- when one source carries several calls, each datagram goes to the call whose
  declared SSRC it carries; a lone call at a source takes every SSRC (a carrier
  may change it mid-call);
- a datagram from a source no call has is dropped and counted, as is one over
  2,048 bytes, and one the kernel has no room to send.
Media sent from an address other than the SDP's (a carrier behind NAT) never
reaches a call here: the setting is for trunks that send media from where they
say they will.

A call's endpoint keeps using ``RtpEndpoint`` and ``RtcpEndpoint``; its
transport is a ``SharedPortView`` that queues what it sends on the shared port
and, when closed, removes the call's route.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Protocol, cast

from trunkline.gateway.rtp.transport import MAX_DATAGRAM, RtcpEndpoint, RtpEndpoint
from trunkline.speedups import address_key, recv_batch, send_batch

Address = tuple[str, int]
BATCH = 64  # datagrams read per wake-up (the most one recvmmsg call takes)
MAX_QUEUED = 8192  # datagrams waiting for the next send; more are dropped and counted
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # asked for each way (see ``SharedPort.bind``)
RTP_SSRC_OFFSET = 8  # the SSRC's place in an RTP header
RTCP_SSRC_OFFSET = 4  # the sender's SSRC in an RTCP packet


class _Receiver(Protocol):
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None: ...


class _Route:
    """A call's place on a shared port: where its datagrams come from, who gets them."""

    __slots__ = ("key", "receiver", "source", "ssrc")

    def __init__(self, receiver: _Receiver, source: Address, key: bytes, ssrc: int | None) -> None:
        self.receiver = receiver
        self.source = source
        self.key = key
        self.ssrc = ssrc


class SharedPort:
    """One bound UDP socket, read when readable and written once per loop iteration."""

    def __init__(self, host: str, port: int, *, ssrc_offset: int) -> None:
        self.host = host
        self.port = port
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._ssrc_offset = ssrc_offset
        # By source key: a lone call's route, or several calls' routes by SSRC (4 bytes).
        self._routes: dict[bytes, _Route | dict[bytes, _Route]] = {}
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queued: list[tuple[bytes, bytes]] = []
        self._flush_scheduled = False
        self.dropped = {"unrouted": 0, "oversized": 0, "send_full": 0}
        self.received = 0  # datagrams read (routed or not)
        self.sent = 0
        self.receive_errors = 0
        self.receive_buffer_bytes = 0  # what the kernel granted, once bound

    # -- binding ---------------------------------------------------------------------
    def bind(self) -> None:
        """Bind and start reading (on the running loop); OSError when the port is taken."""
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # Every call's packets wait in this one buffer while the loop is busy: ask for
            # room for a few hundred milliseconds of a thousand calls (the kernel caps it at
            # net.core.rmem_max / wmem_max; start-up reports what was granted).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.receive_buffer_bytes = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self._routes.clear()
        self._queued.clear()

    @property
    def sockname(self) -> tuple[str, int]:
        assert self._sock is not None
        name = self._sock.getsockname()
        return name[0], name[1]

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped because the receive buffer was full (the ``drops``
        column of /proc/net/udp for this socket; 0 where that cannot be read)."""
        if self._sock is None:
            return 0
        inode = str(os.fstat(self._sock.fileno()).st_ino)
        table = "/proc/net/udp6" if self.family == socket.AF_INET6 else "/proc/net/udp"
        try:
            with open(table) as lines:
                for line in lines:
                    fields = line.split()
                    if len(fields) > 12 and fields[9] == inode:
                        return int(fields[12])
        except (OSError, ValueError):
            pass
        return 0

    @property
    def routes(self) -> int:
        """Calls routed here now."""
        return sum(1 if isinstance(r, _Route) else len(r) for r in self._routes.values())

    # -- routing ---------------------------------------------------------------------
    def key_of(self, source: Address) -> bytes | None:
        """The source's key, or None when it cannot be routed here (not an IP literal of the
        port's family, an unspecified address, port 0)."""
        host, port = source
        if (":" in host) != (self.family == socket.AF_INET6) or port == 0:
            return None
        try:
            key = address_key(host, port)
        except ValueError:
            return None
        return None if key[:-2] == bytes(len(key) - 2) else key

    def can_route(self, key: bytes, ssrc: int | None) -> bool:
        """Whether a call from ``key`` (declaring ``ssrc`` or not) can be told from the rest."""
        held = self._routes.get(key)
        if held is None:
            return True
        if ssrc is None:
            return False
        if isinstance(held, _Route):
            return held.ssrc is not None and held.ssrc != ssrc
        return ssrc.to_bytes(4, "big") not in held

    def route(self, receiver: _Receiver, source: Address, key: bytes, ssrc: int | None) -> _Route:
        """Send ``key``'s datagrams to ``receiver`` (``can_route`` said it may)."""
        route = _Route(receiver, source, key, ssrc)
        held = self._routes.get(key)
        if held is None:
            self._routes[key] = route
        else:
            assert ssrc is not None
            by_ssrc = held if isinstance(held, dict) else {_ssrc_key(held): held}
            by_ssrc[ssrc.to_bytes(4, "big")] = route
            self._routes[key] = by_ssrc
        return route

    def unroute(self, route: _Route) -> None:
        held = self._routes.get(route.key)
        if held is route:
            del self._routes[route.key]
        elif isinstance(held, dict):
            ssrc = _ssrc_key(route)
            if held.get(ssrc) is route:
                del held[ssrc]
            if len(held) == 1:  # alone again: it takes every SSRC
                self._routes[route.key] = next(iter(held.values()))

    # -- datagrams -------------------------------------------------------------------
    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            batch = recv_batch(sock, BATCH)
        except OSError:
            self.receive_errors += 1  # an ICMP error surfacing on the socket: nothing lost
            return
        self.received += len(batch)
        routes = self._routes
        for data, key in batch:
            held = routes.get(key)
            if held is None:
                self.dropped["unrouted"] += 1
                continue
            if len(data) > MAX_DATAGRAM:
                self.dropped["oversized"] += 1
                continue
            if isinstance(held, dict):
                at = self._ssrc_offset
                route = held.get(data[at : at + 4])
                if route is None:
                    self.dropped["unrouted"] += 1
                    continue
                held = route
            held.receiver.datagram_received(data, held.source)

    def send(self, data: bytes, key: bytes) -> None:
        """Queue a datagram for this loop iteration's batch."""
        queued = self._queued
        if len(queued) >= MAX_QUEUED or self._sock is None:
            self.dropped["send_full"] += 1
            return
        queued.append((data, key))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        queued, self._queued = self._queued, []
        if self._sock is None or not queued:
            return
        try:
            sent = send_batch(self._sock, queued)
        except OSError:
            sent = 0
        self.sent += sent
        self.dropped["send_full"] += len(queued) - sent


def _ssrc_key(route: _Route) -> bytes:
    assert route.ssrc is not None
    return route.ssrc.to_bytes(4, "big")


class SharedPortView:
    """One call's transport on a shared port: what ``RtpEndpoint`` and ``RtcpEndpoint`` send
    through, and close to leave the port."""

    def __init__(self, port: SharedPort, route: _Route) -> None:
        self._port = port
        self._route: _Route | None = route
        self._to: tuple[Address, bytes] | None = None  # the last destination and its key

    def sendto(self, data: bytes, addr: Address) -> None:
        to = self._to
        if to is None or to[0] != addr:
            key = self._port.key_of(addr)
            if key is None:
                self._port.dropped["send_full"] += 1  # not sendable from this port
                return
            to = self._to = (addr, key)
        self._port.send(data, to[1])

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._port.sockname if name == "sockname" else default

    def move(self, source: Address) -> bool:
        """The far end now sends from ``source``; False (nothing changed) when it cannot be
        told from another call's there."""
        route = self._route
        if route is None or source == route.source:
            return True
        key = self._port.key_of(source)
        if key is None or not self._port.can_route(key, route.ssrc):
            return False
        self._port.unroute(route)
        self._route = self._port.route(route.receiver, source, key, route.ssrc)
        return True

    def close(self) -> None:
        if self._route is not None:
            self._port.unroute(self._route)
            self._route = None


class SharedMediaPorts:
    """A worker's shared RTP port and the RTCP port after it."""

    def __init__(self, host: str, rtp_port: int) -> None:
        self.rtp = SharedPort(host, rtp_port, ssrc_offset=RTP_SSRC_OFFSET)
        self.rtcp = SharedPort(host, rtp_port + 1, ssrc_offset=RTCP_SSRC_OFFSET)

    def bind(self) -> None:
        self.rtp.bind()
        try:
            self.rtcp.bind()
        except OSError:
            self.rtp.close()
            raise

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()

    def open(self, source: Address, ssrc: int | None) -> RtpEndpoint | None:
        """A call's endpoint on the shared ports, or None when its media cannot be told
        apart from another call's there (it then needs a port pair of its own)."""
        rtcp_source = _rtcp_source(source)
        rtp_key, rtcp_key = self.rtp.key_of(source), self.rtcp.key_of(rtcp_source)
        if rtp_key is None or rtcp_key is None:
            return None
        if not (self.rtp.can_route(rtp_key, ssrc) and self.rtcp.can_route(rtcp_key, ssrc)):
            return None
        endpoint = SharedRtpEndpoint()
        endpoint.view = SharedPortView(self.rtp, self.rtp.route(endpoint, source, rtp_key, ssrc))
        endpoint.transport = cast(asyncio.DatagramTransport, endpoint.view)
        rtcp = RtcpEndpoint()
        endpoint.rtcp_view = SharedPortView(
            self.rtcp, self.rtcp.route(rtcp, rtcp_source, rtcp_key, ssrc)
        )
        rtcp.transport = cast(asyncio.DatagramTransport, endpoint.rtcp_view)
        endpoint.rtcp = rtcp
        return endpoint

    def receive_buffer_bytes(self) -> int:
        """The receive buffer the kernel granted the RTP port (the smaller of the two)."""
        return min(self.rtp.receive_buffer_bytes, self.rtcp.receive_buffer_bytes)

    def dropped(self) -> dict[str, int]:
        """Datagrams dropped on either port, by reason (``receive_buffer``: by the kernel)."""
        dropped = {reason: n + self.rtcp.dropped[reason] for reason, n in self.rtp.dropped.items()}
        dropped["receive_buffer"] = self.rtp.kernel_drops() + self.rtcp.kernel_drops()
        return dropped


def _rtcp_source(source: Address) -> Address:
    return source[0], source[1] + 1  # RTCP on the port after RTP's (RFC 3550 section 11)


class SharedRtpEndpoint(RtpEndpoint):
    """A call's ``RtpEndpoint`` on the shared ports (its RTCP's view kept beside it)."""

    def __init__(self) -> None:
        super().__init__()
        self.view: SharedPortView | None = None
        self.rtcp_view: SharedPortView | None = None

    def move(self, remote: Address) -> bool:
        if self.view is None or self.rtcp_view is None:
            return True  # closed
        # The two ports' routes mirror each other (same SSRC, RTCP one port up), so when
        # RTP's can move RTCP's can too.
        if not self.view.move(remote):
            return False
        self.rtcp_view.move(_rtcp_source(remote))
        return True
