"""The shared RTP port on real loopback sockets: calls told apart by source, then by SSRC.

A datagram given to the wrong call is another caller's audio, so every way a
source can be ambiguous is refused up front (the call then gets a port pair of
its own) and every datagram no call owns is dropped and counted.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.gateway.conftest import free_port_run
from trunkline.gateway.rtp.rtcp import RtcpState, build_report
from trunkline.gateway.rtp.session import RtpSession
from trunkline.gateway.rtp.shared_port import SharedMediaPorts, SharedPort, SharedRtpEndpoint
from trunkline.gateway.rtp.transport import RtpPortAllocator
from trunkline.speedups import address_key

HOST = "127.0.0.1"


def free_ports(count: int) -> int:
    """The first of ``count`` ports in a row free a moment ago (``free_port_run``'s range for
    the shared port, away from the kernel's ephemeral ports)."""
    return free_port_run(count, 28400, 30400)


class Heard:
    """A receiver on the shared port: every datagram routed to it, with the source it was given."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, addr))


class Carrier:
    """A carrier's media socket on loopback (RTP on ``port``; any free one by default)."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.setblocking(False)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def rtp(self, to: int, ssrc: int, sequence: int = 1, size: int = 160) -> None:
        header = struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, ssrc)
        self.sock.sendto(header + b"\xff" * size, (HOST, to))

    def received(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.sock.recv(4096))
            except BlockingIOError:
                return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def ports() -> AsyncIterator[SharedMediaPorts]:
    shared = SharedMediaPorts(HOST, free_ports(2))
    shared.bind()
    yield shared
    shared.close()


@pytest.fixture
def carriers() -> Iterator[list[Carrier]]:
    made = [Carrier() for _ in range(3)]
    yield made
    for carrier in made:
        carrier.close()


async def settle(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    """Let the loop read what loopback delivered, until ``condition()`` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the datagrams were not read in time")
        await asyncio.sleep(0.005)


def route(port: SharedPort, source: tuple[str, int], ssrc: int | None = None) -> Heard:
    key = port.key_of(source)
    assert key is not None and port.can_route(key, ssrc)
    heard = Heard()
    port.route(heard, source, key, ssrc)
    return heard


async def test_calls_from_different_sources_each_get_only_their_own_datagrams(
    ports: SharedMediaPorts, carriers: list[Carrier]
) -> None:
    a, b, stranger = carriers
    heard_a, heard_b = route(ports.rtp, a.address), route(ports.rtp, b.address)
    for n in range(1, 21):
        a.rtp(ports.rtp.port, ssrc=1, sequence=n)
        b.rtp(ports.rtp.port, ssrc=2, sequence=n)
    stranger.rtp(ports.rtp.port, ssrc=1)
    await settle(lambda: ports.rtp.received == 41)
    assert len(heard_a.datagrams) == len(heard_b.datagrams) == 20
    assert {addr for _, addr in heard_a.datagrams} == {a.address}
    assert {data[8:12] for data, _ in heard_b.datagrams} == {(2).to_bytes(4, "big")}
    assert ports.rtp.dropped["unrouted"] == 1  # the stranger's


async def test_one_source_carries_several_calls_only_when_each_declared_its_ssrc(
    ports: SharedMediaPorts, carriers: list[Carrier]
) -> None:
    carrier = carriers[0]
    key = ports.rtp.key_of(carrier.address)
    assert key is not None
    first = route(ports.rtp, carrier.address, ssrc=11)
    assert not ports.rtp.can_route(key, None)  # undeclared: could be either call
    assert not ports.rtp.can_route(key, 11)  # the same SSRC: could be either call
    second = route(ports.rtp, carrier.address, ssrc=22)
    for ssrc in (11, 22, 22, 33):
        carrier.rtp(ports.rtp.port, ssrc=ssrc)
    await settle(lambda: ports.rtp.received == 4)
    assert len(first.datagrams) == 1 and len(second.datagrams) == 2
    assert ports.rtp.dropped["unrouted"] == 1  # SSRC 33 is neither call's
    assert ports.rtp.routes == 2


async def test_a_lone_call_takes_every_ssrc_and_keeps_its_source_to_itself(
    ports: SharedMediaPorts, carriers: list[Carrier]
) -> None:
    carrier = carriers[0]
    key = ports.rtp.key_of(carrier.address)
    assert key is not None
    undeclared = route(ports.rtp, carrier.address)
    assert not ports.rtp.can_route(key, 5)  # it could be sending SSRC 5 itself
    carrier.rtp(ports.rtp.port, ssrc=5)
    carrier.rtp(ports.rtp.port, ssrc=6)  # a carrier may change SSRC mid-call
    await settle(lambda: len(undeclared.datagrams) == 2)


async def test_a_call_that_leaves_frees_its_source_and_the_other_takes_every_ssrc(
    ports: SharedMediaPorts, carriers: list[Carrier]
) -> None:
    carrier = carriers[0]
    first = ports.open(carrier.address, 11)
    second = ports.open(carrier.address, 22)
    assert first is not None and second is not None
    heard = Heard()
    second.datagram_received = heard.datagram_received  # type: ignore[method-assign]
    first.close()
    carrier.rtp(ports.rtp.port, ssrc=11)  # now the lone call's
    await settle(lambda: len(heard.datagrams) == 1)
    second.close()
    carrier.rtp(ports.rtp.port, ssrc=22)
    await settle(lambda: ports.rtp.dropped["unrouted"] == 1)
    assert ports.rtp.routes == 0 and ports.rtcp.routes == 0


async def test_sources_that_cannot_be_routed_are_refused(ports: SharedMediaPorts) -> None:
    for source in (
        ("carrier.example", 4000),  # not an IP literal
        ("::1", 4000),  # another family than the port's
        ("0.0.0.0", 4000),  # unspecified (a call on hold)
        (HOST, 0),
    ):
        assert ports.rtp.key_of(source) is None
        assert ports.open(source, None) is None


async def test_oversized_datagrams_are_dropped_and_counted(
    ports: SharedMediaPorts, carriers: list[Carrier]
) -> None:
    carrier = carriers[0]
    heard = route(ports.rtp, carrier.address)
    carrier.rtp(ports.rtp.port, ssrc=1, size=2100)
    carrier.rtp(ports.rtp.port, ssrc=1, size=160)
    await settle(lambda: ports.rtp.received == 2)
    assert len(heard.datagrams) == 1 and ports.rtp.dropped["oversized"] == 1


async def test_a_call_on_the_shared_port_hears_its_carrier_and_answers_from_that_port(
    ports: SharedMediaPorts, carriers: list[Carrier]
) -> None:
    a, b = carriers[0], carriers[1]
    low = free_ports(4)  # the range the allocator binds pairs in
    allocator = RtpPortAllocator(HOST, low, low + 3, shared=ports)
    heard: dict[str, list[bytes]] = {"a": [], "b": []}
    endpoints = []
    for name, carrier in (("a", a), ("b", b)):
        endpoint = await allocator.open(carrier.address, None)
        assert isinstance(endpoint, SharedRtpEndpoint) and endpoint.port == ports.rtp.port
        endpoint.session = RtpSession(
            0,
            None,
            lambda payload, name=name: heard[name].append(bytes(payload)),  # type: ignore[misc]
            lambda digit: None,
            remote=carrier.address,
        )
        endpoints.append(endpoint)
    assert allocator.in_use == 0  # no port of the range was taken
    # A third call from a's source, with no SSRC to tell it by, gets a pair of its own.
    own = await allocator.open(a.address, None)
    assert not isinstance(own, SharedRtpEndpoint) and own.port in (low, low + 2)
    allocator.release(own)
    for n in range(1, 6):
        a.rtp(ports.rtp.port, ssrc=7, sequence=n)
    await settle(lambda: len(heard["a"]) == 5)
    assert heard["b"] == []
    for endpoint in endpoints:  # each sends a frame: both leave in one batch
        packet = endpoint.session.next_frame(b"\x7f" * 160)  # type: ignore[union-attr]
        assert packet is not None
        endpoint.send(packet)
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    await settle(
        lambda: bool(got_a.extend(a.received()) or got_b.extend(b.received()) or (got_a and got_b))
    )
    assert len(got_a) == 1 and len(got_b) == 1 and got_a[0][12:] == b"\x7f" * 160
    assert ports.rtp.sent == 2
    for endpoint in endpoints:
        allocator.release(endpoint)
    assert ports.rtp.routes == 0


async def test_rtcp_reports_reach_the_call_they_belong_to(ports: SharedMediaPorts) -> None:
    carrier = Carrier(free_ports(2))
    carrier_rtcp = Carrier(carrier.address[1] + 1)  # RTCP one port up, as RFC 3550 has it
    try:
        endpoint = ports.open(carrier.address, None)
        other = ports.open(("127.0.0.2", carrier.address[1]), None)
        assert endpoint is not None and endpoint.rtcp is not None
        assert other is not None and other.rtcp is not None
        report = build_report(
            ssrc=9,
            rtp_timestamp=0,
            packets_sent=1,
            octets_sent=160,
            stats=None,
            state=RtcpState(),
            now_unix=time.time(),
            now_mono=time.monotonic(),
        )
        carrier_rtcp.sock.sendto(report, (HOST, ports.rtcp.port))
        rtcp = endpoint.rtcp
        await settle(lambda: rtcp.state.packets_in == 1)
        assert rtcp.remote == carrier_rtcp.address
        assert other.rtcp.state.packets_in == 0
        endpoint.close()
        other.close()
        assert ports.rtcp.routes == 0
    finally:
        carrier.close()
        carrier_rtcp.close()


async def test_a_reinvite_moves_the_route_unless_another_call_has_that_source(
    ports: SharedMediaPorts, carriers: list[Carrier]
) -> None:
    a, b, c = carriers
    moving = ports.open(a.address, None)
    staying = ports.open(b.address, None)
    assert moving is not None and staying is not None
    heard = Heard()
    moving.datagram_received = heard.datagram_received  # type: ignore[method-assign]
    assert not moving.move(b.address)  # b's source is another call's
    assert moving.move(c.address)
    a.rtp(ports.rtp.port, ssrc=1)  # the old source: no longer this call's
    c.rtp(ports.rtp.port, ssrc=1)
    await settle(lambda: ports.rtp.received == 2)
    assert [addr for _, addr in heard.datagrams] == [c.address]
    assert ports.rtp.dropped["unrouted"] == 1
    assert address_key(*c.address) in ports.rtp._routes


async def test_datagrams_the_kernel_drops_for_a_full_buffer_are_counted(
    ports: SharedMediaPorts, carriers: list[Carrier]
) -> None:
    assert ports.receive_buffer_bytes() > 0
    carrier = carriers[0]
    heard = route(ports.rtp, carrier.address)
    shared_socket = ports.rtp._sock
    assert shared_socket is not None
    shared_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the smallest it takes
    for n in range(500):  # sent while the loop cannot read: most find the buffer full
        carrier.rtp(ports.rtp.port, ssrc=1, sequence=n)
    await settle(lambda: ports.rtp.kernel_drops() > 0)
    dropped = ports.dropped()["receive_buffer"]
    await settle(lambda: ports.rtp.received + dropped == 500)
    assert len(heard.datagrams) == ports.rtp.received
