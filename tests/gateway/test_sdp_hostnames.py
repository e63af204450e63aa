"""An SDP ``c=`` line naming its host: resolved once before the answer, or refused with 488."""

from __future__ import annotations

import os

import pytest

from tests.gateway.conftest import NUMBER, PASS_THROUGH, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from trunkline.gateway.rtp.leg import RtpLeg


@PASS_THROUGH  # the echo is compared byte for byte: no concealment frames between
async def test_a_connection_host_name_is_resolved_and_audio_flows_to_it(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        answer = await carrier.invite(NUMBER, media_host="localhost")
        assert answer.status == 200, answer
        (call,) = trunkline.gateway.calls.values()
        frames = [os.urandom(160).replace(b"\xff", b"\xfe") for _ in range(25)]
        await carrier.send_audio(frames)
        echoed = await carrier.received_audio(len(frames) * 160)
        assert echoed == b"".join(frames)  # sent to what localhost resolved to
        assert call.bridge is not None and call.bridge.frames_to_caller > 0
        leg = call.bridge.caller
        assert isinstance(leg, RtpLeg)
        assert leg.session.remote == ("127.0.0.1", carrier.rtp_port)  # the name, resolved
        dialog = carrier.to_header
        reinvite = await carrier.invite(NUMBER, cseq=2, media_host="localhost")  # a refresh
        assert reinvite.status == 200, reinvite
        refused = await carrier.invite(NUMBER, cseq=3, media_host="no-such-host.invalid")
        assert refused.status == 488, refused
        carrier.to_header = dialog
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()


@pytest.mark.parametrize(
    "host",
    [
        "999.1.1.1",  # a dotted number that is no IPv4 address
        "bad..host",  # an empty label
        "::1",  # an IPv6 address on an IP4 line
        "no-such-host.invalid",  # a name that never resolves (RFC 2606)
    ],
)
async def test_a_connection_address_that_is_unusable_gets_488_and_no_call(
    trunkline: Trunkline, echo_agent: EchoAgent, host: str
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        answer = await carrier.invite(NUMBER, media_host=host)
        assert answer.status == 488, answer
        assert trunkline.gateway.calls == {}
        assert echo_agent.calls == []  # the agent was never dialled
        assert (await carrier.invite(NUMBER, cseq=2)).status == 200  # still serving
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
