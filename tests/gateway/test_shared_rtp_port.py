"""Inbound calls on the shared RTP port (TRUNKLINE_RTP_SHARED_PORT), end to end.

Carriers whose media comes from their SDP address are answered on the one
shared port and each hears only its own echo; a call whose source another call
already has gets a port pair of its own; sipp, as a carrier, completes its
calls either way.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.gateway.conftest import NUMBER, PASS_THROUGH, EchoAgent, Trunkline, free_port_run
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_metrics import scrape, value
from tests.gateway.test_sipp_carrier import assert_fifty_echoed_calls, run_sipp, sipp_available
from trunkline.gateway.rtp.shared_port import SharedMediaPorts
from trunkline.gateway.sip.sdp import parse_sdp


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    return {"transcription": "off", "rtp_shared_port": free_port_run(2, 28400, 30400)}


def shared_ports(trunkline: Trunkline) -> SharedMediaPorts:
    shared = trunkline.gateway.ports.shared
    assert isinstance(shared, SharedMediaPorts)
    return shared


async def echo_round_trip(carrier: CarrierCall) -> None:
    frames = [os.urandom(160).replace(b"\xff", b"\xfe") for _ in range(25)]
    await carrier.send_audio(frames)
    assert await carrier.received_audio(len(frames) * 160) == b"".join(frames)


@PASS_THROUGH
async def test_calls_from_three_carriers_share_one_port_and_hear_only_their_own_echo(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    shared = shared_ports(trunkline)
    carriers = [await CarrierCall.open(trunkline.sip_port, f"127.0.0.{n}") for n in (1, 2, 3)]
    try:
        answers = await asyncio.gather(*(c.invite(NUMBER) for c in carriers))
        for answer in answers:
            assert answer.status == 200, answer
            assert parse_sdp(answer.body).port == shared.rtp.port
        assert trunkline.gateway.ports.in_use == 0  # no port of the range was taken
        assert shared.rtp.routes == 3 and shared.rtcp.routes == 3
        await asyncio.gather(*(echo_round_trip(c) for c in carriers))
        assert shared.rtp.received >= 75 and shared.rtp.sent >= 75
        # A datagram from no call's source is dropped, and /metrics says why.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.sendto(bytes(172), ("127.0.0.1", shared.rtp.port))
        for _ in range(100):
            metrics = await scrape(trunkline)
            if value(metrics, "trunkline_rtp_packets_dropped_total", reason="unrouted") == 1:
                break
            await asyncio.sleep(0.02)
        assert value(metrics, "trunkline_rtp_packets_dropped_total", reason="unrouted") == 1
        for carrier in carriers:
            assert (await carrier.bye(NUMBER)).status == 200
        for _ in range(100):
            if shared.rtp.routes == 0:
                break
            await asyncio.sleep(0.05)
        assert shared.rtp.routes == 0 and shared.rtcp.routes == 0
        assert shared.dropped()["oversized"] == 0
    finally:
        for carrier in carriers:
            carrier.close()


@PASS_THROUGH
async def test_a_call_from_a_source_another_call_has_gets_a_port_pair_of_its_own(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    shared = shared_ports(trunkline)
    first = await CarrierCall.open(trunkline.sip_port)
    second = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await first.invite(NUMBER)).status == 200
        second.rtp_port = first.rtp_port  # its SDP names the first call's media source
        answer = await second.invite(NUMBER)
        assert answer.status == 200
        settings = trunkline.services.settings.media
        assert settings.rtp_port_min <= parse_sdp(answer.body).port <= settings.rtp_port_max
        assert trunkline.gateway.ports.in_use == 1 and shared.rtp.routes == 1
        await asyncio.gather(echo_round_trip(first), echo_round_trip(second))
    finally:
        first.close()
        second.close()


async def test_sipp_completes_its_calls_with_the_shared_port_on(
    trunkline: Trunkline, echo_agent: EchoAgent, tmp_path: Path
) -> None:
    """sipp names one media port in every call's SDP: one call at a time is on the shared
    port, the others on pairs of their own, and all of them echo."""
    require(await asyncio.to_thread(sipp_available), "sipp (Debian sip-tester)")
    number = await trunkline.number("auto_accept", echo_agent.url)
    await run_sipp(trunkline, tmp_path, calls=50, concurrent=10)
    await assert_fifty_echoed_calls(trunkline, echo_agent, number.organization_id)
    shared = shared_ports(trunkline)
    assert shared.rtp.received > 0 and shared.rtp.routes == 0
