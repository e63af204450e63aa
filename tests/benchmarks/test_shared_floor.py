"""The floor relay's shared RTP socket: every call on one port, told apart by SSRC."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from benchmarks.bridge import SharedFloorPort

HEADER = struct.Struct("!BBHII")


class Call:
    """Stands in for a floor relay: keeps what was routed to it and answers each datagram."""

    def __init__(self, port: SharedFloorPort) -> None:
        self.port = port
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, peer: Any) -> None:
        self.received.append(data)
        self.port.send(b"back:" + data[12:], peer)


def packet(ssrc: int, sequence: int) -> bytes:
    return HEADER.pack(0x80, 0, sequence, 160 * sequence, ssrc) + bytes([sequence]) * 160


async def test_each_ssrc_goes_to_its_own_call_and_answers_go_back_to_the_source() -> None:
    relays: list[Any] = []
    port = SharedFloorPort(relays)
    calls = [Call(port), Call(port)]
    relays.extend(calls)
    carrier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    carrier.bind(("127.0.0.1", 0))
    carrier.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        sent = [packet(0xA, 1), packet(0xB, 2), packet(0xA, 3), packet(0xC, 4), packet(0xB, 5)]
        for datagram in sent:
            carrier.sendto(datagram, ("127.0.0.1", port.port))
        answers: list[bytes] = []
        async with asyncio.timeout(5):
            while len(answers) < 4:
                answers.append(await loop.sock_recv(carrier, 2048))
        # The first SSRC seen is the first call's, the second the second's; a third SSRC
        # has no call left and is dropped.
        assert calls[0].received == [sent[0], sent[2]]
        assert calls[1].received == [sent[1], sent[4]]
        assert sorted(answers) == sorted(
            b"back:" + d[12:] for d in (sent[0], sent[1], sent[2], sent[4])
        )
    finally:
        port.close()
        carrier.close()
