"""A test call nobody answers: INVITE retransmitted, then cancelled; a hang-up before the answer."""

from __future__ import annotations

import asyncio

from trunkline.gateway.sip.message import SipRequest, parse_message
from trunkline.testcall.caller import CallOptions, place_call


class Silent(asyncio.DatagramProtocol):
    """A SIP server that hears requests and never answers them."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        assert isinstance(message, SipRequest)
        self.methods.append(message.method)


async def silent_server() -> tuple[asyncio.DatagramTransport, Silent, int]:
    server = Silent()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", 0)
    )
    return transport, server, int(transport.get_extra_info("sockname")[1])


async def test_an_unanswered_call_is_retransmitted_then_cancelled() -> None:
    transport, server, port = await silent_server()
    try:
        summary = await place_call(
            CallOptions("+15550100000", "127.0.0.1", port, answer_timeout=1.2)
        )
    finally:
        transport.close()
    assert not summary.answered and summary.hung_up_by is None
    assert summary.reason == "no answer within 1 s; cancelled"
    assert summary.lines()[0] == "answered: no (no answer within 1 s; cancelled)"
    assert server.methods[:2] == ["INVITE", "INVITE"]  # T1 = 500 ms: one retransmission
    assert "CANCEL" in server.methods
    assert summary.counts.audio_sent == 0


async def test_hanging_up_before_the_answer_cancels_the_call() -> None:
    transport, server, port = await silent_server()
    hang_up = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, hang_up.set)
    try:
        summary = await place_call(CallOptions("+15550100000", "127.0.0.1", port), hang_up)
    finally:
        transport.close()
    assert not summary.answered
    assert summary.reason == "hung up before the answer; cancelled"
    assert server.methods[0] == "INVITE" and "CANCEL" in server.methods
