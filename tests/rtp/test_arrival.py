"""When a datagram came in, from the kernel's receive stamp, on real loopback sockets.

The event loop is made to stall (a blocking sleep inside it) while datagrams wait
in the socket: their arrival must be told from the time they are handled.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import threading
import time
from typing import Any

from tests.conftest import require
from tests.rtp.test_port_allocator import free_even_range
from trunkline.gateway.rtp.arrival import KernelArrival
from trunkline.gateway.rtp.jitter import JitterBuffer
from trunkline.gateway.rtp.session import RtpSession
from trunkline.gateway.rtp.transport import RtpPortAllocator

STALL = 0.080


def linux() -> None:
    require(sys.platform.startswith("linux"), "receive stamps are read with a Linux ioctl")


class Handled(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.arrival: KernelArrival | None = None
        self.seen: list[tuple[float, float]] = []  # (handled, arrived), monotonic seconds
        self.got = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.arrival = KernelArrival.of(transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.arrival is not None
        now = time.monotonic()
        self.seen.append((now, self.arrival(now)))
        self.got.set()


async def test_a_datagram_that_waited_through_a_stall_is_timed_by_its_arrival() -> None:
    linux()
    loop = asyncio.get_running_loop()
    transport, handled = await loop.create_datagram_endpoint(Handled, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        assert handled.arrival is not None
        # The kernel switches stamping on for the first socket that asks a moment later
        # (deferred work); until then a datagram's stamp is the time it is read.
        await asyncio.sleep(0.2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sent_at = time.monotonic()
            sender.sendto(b"x" * 172, ("127.0.0.1", port))
            time.sleep(STALL)  # noqa: ASYNC251 - the loop stalls: the datagram waits in the socket
            await asyncio.wait_for(handled.got.wait(), 5)
        (now, arrived), *_ = handled.seen
        assert now - sent_at >= STALL
        assert sent_at - 0.002 <= arrived <= sent_at + 0.010, (sent_at, arrived, now)
    finally:
        transport.close()


def rtp(sequence: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, 0x1234) + b"\xff" * 160


async def test_calls_on_ports_of_their_own_discount_the_loops_stalls() -> None:
    """A caller's packets come every 20 ms from another thread; the loop stalls once for
    80 ms. The packets that waited are retimed, so the RFC 3550 jitter estimate stays
    under 5 ms, where the stall alone would put it over 10 ms."""
    linux()
    low = free_even_range(4)
    allocator = RtpPortAllocator("127.0.0.1", low, low + 3)
    endpoint = await allocator.open()
    assert endpoint.arrival is not None
    session = RtpSession(
        0,
        None,
        lambda frame: None,
        lambda digit: None,
        remote=("127.0.0.1", 0),
        jitter=JitterBuffer(),
        arrival=endpoint.arrival,
    )
    endpoint.session = session

    def caller() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            start = time.monotonic()
            for sequence in range(40):
                time.sleep(max(0.0, start + sequence * 0.020 - time.monotonic()))
                sender.sendto(rtp(sequence), ("127.0.0.1", endpoint.port))

    try:
        thread = threading.Thread(target=caller)
        thread.start()
        await asyncio.sleep(0.3)
        time.sleep(STALL)  # noqa: ASYNC251 - the loop stalls: packets wait in the socket
        await asyncio.to_thread(thread.join)
        await asyncio.sleep(0.1)
        counters = session.counters
        assert counters.packets_in == 40
        assert counters.retimed >= 1
        stats = session.reception_stats()
        assert stats is not None
        assert stats.jitter < 8 * 5  # 8 kHz units: under 5 ms (the stall alone: over 10)
    finally:
        endpoint.session = None
        allocator.release(endpoint)


async def test_a_socket_without_a_kernel_stamp_gives_no_clock() -> None:
    class NoSocket:
        def get_extra_info(self, name: str) -> None:
            return None

    assert KernelArrival.of(NoSocket()) is None
