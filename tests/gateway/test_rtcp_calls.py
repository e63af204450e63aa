"""RTCP on a live call: trunkline learns the peer's RTCP address and sends sender reports."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from tests.gateway.conftest import NUMBER, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from tests.rtp.test_rtcp import report
from trunkline.gateway.rtp import leg
from trunkline.gateway.rtp.rtcp import RTCP_SR


async def test_calls_send_sender_reports_to_the_peer(
    trunkline: Trunkline, echo_agent: EchoAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leg, "REPORT_INTERVAL_FRAMES", 10)  # first report within ~1.2 s
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp.bind(("127.0.0.1", 0))
    rtcp.setblocking(False)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        assert carrier.remote_media is not None
        await carrier.send_audio([b"\x11" * 160] * 5)
        trunkline_rtcp = (carrier.remote_media[0], carrier.remote_media[1] + 1)
        rtcp.sendto(report(None), trunkline_rtcp)  # trunkline learns where we listen
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(rtcp, 2048), 5)
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        rtcp.close()
        carrier.close()
    assert data[1] == RTCP_SR and data[0] & 0x1F == 1  # one report block: our stream
    packets_sent = struct.unpack_from("!I", data, 20)[0]
    assert packets_sent > 0  # audio and silence frames
    lost_word, highest = struct.unpack_from("!II", data, 32)
    assert lost_word & 0xFFFFFF == 0 and highest > 0  # all five frames arrived
