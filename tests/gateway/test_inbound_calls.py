"""Inbound SIP calls end to end: a carrier (test UAC + RTP peer) to a real WebSocket agent."""

from __future__ import annotations

import asyncio
import os

from tests.gateway.conftest import NUMBER, PASS_THROUGH, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall


async def wait_for_status(trunkline: Trunkline, call_id: str, status: str) -> None:
    for _ in range(200):
        call = await trunkline.services.repository.get_call(call_id)
        if call is not None and call.status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"call never reached {status}: {call}")


@PASS_THROUGH
async def test_mulaw_echo_round_trip_is_sample_exact(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    number = await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        answer = await carrier.invite(NUMBER)
        assert answer.status == 200, answer
        frames = [os.urandom(160).replace(b"\xff", b"\xfe") for _ in range(50)]
        await carrier.send_audio(frames)
        echoed = await carrier.received_audio(len(frames) * 160)
        assert echoed == b"".join(frames)
        bye = await carrier.bye(NUMBER)
        assert bye.status == 200
        (agent_call,) = echo_agent.calls
        await asyncio.wait_for(agent_call.closed.wait(), 5)
        start = agent_call.events[0]
        assert start["event"] == "start"
        assert start["start"]["media_format"]["encoding"] == "audio/x-mulaw"
        assert agent_call.events[-1] == {"event": "stop", "reason": "remote"}
        context = agent_call.headers["x-call-context"]
        assert NUMBER in context and "+14155550123" in context
        calls = await trunkline.services.repository.list_calls(number.organization_id)
        (call,) = calls
        await wait_for_status(trunkline, call.id, "completed")
        stored = await trunkline.services.repository.get_call(call.id)
        assert stored is not None and stored.hangup_reason == "remote"
        assert stored.started_at is not None and stored.ended_at is not None
        for _ in range(100):  # the recording is published once its file is closed
            events = await trunkline.services.repository.list_events(number.organization_id)
            if len(events) == 3:
                break
            await asyncio.sleep(0.05)
        assert sorted(e.event_type for e in events) == [
            "call.ended",
            "call.started",
            "recording.ready",
        ]
        assert trunkline.services.call_control is not None
    finally:
        carrier.close()


async def test_agent_stop_hangs_up_with_bye(trunkline: Trunkline, echo_agent: EchoAgent) -> None:
    echo_agent.hang_up_after_media = 5
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        sender = asyncio.create_task(carrier.send_audio([b"\x55" * 160] * 30))
        bye = await carrier.expect_request("BYE")
        sender.cancel()
        assert bye.call_id == carrier.call_id
    finally:
        carrier.close()


async def test_rejections(trunkline: Trunkline, echo_agent: EchoAgent) -> None:
    await trunkline.number("auto_reject", None)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 603
    finally:
        carrier.close()
    unknown = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await unknown.invite("+15550109999")).status == 404
    finally:
        unknown.close()
    no_codec = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await no_codec.invite(NUMBER, payload_types="18")).status == 488
    finally:
        no_codec.close()
