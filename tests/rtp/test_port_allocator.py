"""RTP ports on real loopback sockets: one call per port, quarantine after release."""

from __future__ import annotations

import socket

import pytest

from trunkline.gateway.rtp.transport import PortsExhausted, RtpPortAllocator


def free_even_range(width: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return min(port & ~1, 65_000 - width)


async def test_released_ports_rest_before_reuse_unless_nothing_else_is_free() -> None:
    low = free_even_range(8)
    allocator = RtpPortAllocator("127.0.0.1", low, low + 5, quarantine_seconds=60)  # 3 ports
    first = await allocator.open()
    used = first.port
    allocator.release(first)
    others = [await allocator.open() for _ in range(2)]
    assert used not in {e.port for e in others}  # the resting port was skipped
    reused = await allocator.open()  # nothing else is free: the resting port serves
    assert reused.port == used
    with pytest.raises(PortsExhausted):
        await allocator.open()
    assert allocator.exhausted == 1
    for endpoint in [*others, reused]:
        allocator.release(endpoint)
    assert allocator.in_use == 0


async def test_released_ports_return_after_the_quarantine() -> None:
    low = free_even_range(4)
    allocator = RtpPortAllocator("127.0.0.1", low, low + 3, quarantine_seconds=0.0)
    first = await allocator.open()
    port = first.port
    allocator.release(first)
    allocator.release(first)  # twice is harmless
    again = [await allocator.open() for _ in range(2)]
    assert port in {e.port for e in again}
    for endpoint in again:
        allocator.release(endpoint)


async def test_ports_held_by_another_process_leave_the_allocator_at_capacity() -> None:
    low = free_even_range(4)
    allocator = RtpPortAllocator("127.0.0.1", low, low + 3)  # two pairs
    mine = await allocator.open()
    other_port = low if mine.port != low else low + 2
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as foreign:
        foreign.bind(("127.0.0.1", other_port))  # another process holds the other pair
        assert allocator.free == 1 and not allocator.at_capacity
        with pytest.raises(PortsExhausted):
            await allocator.open()
        assert allocator.free == 1 and allocator.at_capacity  # readiness says so
        allocator.release(mine)
        assert not allocator.at_capacity  # a release frees a pair again
