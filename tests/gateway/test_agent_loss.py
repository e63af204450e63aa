"""When the agent is lost: reconnect within the grace period, or end the call; fallback agents."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.gateway.conftest import (
    NUMBER,
    PASS_THROUGH,
    EchoAgent,
    Trunkline,
    audio_mode,
    free_port,
)
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_inbound_calls import wait_for_status
from trunkline.storage.models import InboundRouting, IncomingCallConfig, utcnow


class FlakyAgent(EchoAgent):
    """Drops its first connection after three frames (no ``stop``, no close frame: the TCP
    connection is reset); echoes on later ones."""

    dropped: int = 0

    async def handle(self, connection: ServerConnection) -> None:
        if self.dropped:
            await super().handle(connection)
            return
        self.dropped += 1
        frames = 0
        async for message in connection:
            if json.loads(message).get("event") == "media":
                frames += 1
                if frames == 3:
                    connection.transport.abort()  # the socket drops, no close frame
                    return


@PASS_THROUGH
async def test_dropped_agent_is_redialled_and_the_call_goes_on(trunkline: Trunkline) -> None:
    flaky = FlakyAgent()
    first_connections: list[str] = []
    original = flaky.handle

    async def counting(connection: ServerConnection) -> None:
        first_connections.append(connection.request.path)
        await original(connection)

    async with serve(counting, "127.0.0.1", 0, process_response=audio_mode) as server:
        flaky.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        number = await trunkline.number("auto_accept", flaky.url)
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await carrier.invite(NUMBER)).status == 200
            await carrier.send_audio([b"\x21" * 160] * 10)  # the agent drops mid-way
            for _ in range(100):
                if flaky.calls:
                    break
                await asyncio.sleep(0.02)
            await carrier.send_audio([b"\x22" * 160] * 10)
            echoed = await carrier.received_audio(1600)
            assert echoed.endswith(b"\x22" * 160)  # the redialled agent echoes
            assert (await carrier.bye(NUMBER)).status == 200
        finally:
            carrier.close()
    assert len(first_connections) == 2
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, call.id, "completed")
    stored = await trunkline.services.repository.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "remote"
    assert flaky.calls[0].events[0]["event"] == "start"  # a fresh start on the new socket


@pytest.mark.settings(agent_reconnect_grace_seconds=0.5)
async def test_agent_gone_for_good_ends_the_call_after_the_grace_period(
    trunkline: Trunkline,
) -> None:
    flaky = FlakyAgent()
    server = await serve(flaky.handle, "127.0.0.1", 0, process_response=audio_mode)
    flaky.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
    number = await trunkline.number("auto_accept", flaky.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        server.close()  # no one will answer a redial
        await server.wait_closed()
        sender = asyncio.create_task(carrier.send_audio([b"\x21" * 160] * 100))
        bye = await carrier.expect_request("BYE", wait_seconds=5)
        sender.cancel()
        assert bye.call_id == carrier.call_id
    finally:
        carrier.close()
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, call.id, "completed")
    stored = await trunkline.services.repository.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "local"


@PASS_THROUGH
async def test_unreachable_agent_falls_back_to_the_fallback_agent(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    repository = trunkline.services.repository
    dead_url = f"ws://127.0.0.1:{free_port(socket.SOCK_STREAM)}/agent"
    number = await trunkline.number(
        "auto_accept", dead_url, provider="twilio", trunk_address="127.0.0.1:5060"
    )
    support = await repository.create_identity(number.organization_id, "support", None)
    now = utcnow()
    await repository.upsert_incoming_call_config(
        IncomingCallConfig(
            agent_identity_id=support.id,
            incoming_call_action="auto_accept",
            client_websocket_url=echo_agent.url,
            incoming_call_webhook_url=None,
            created_at=now,
            updated_at=now,
        )
    )
    await repository.update_number(
        number.id, {"inbound_routing": InboundRouting(fallback_agent_id=support.id)}
    )
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        await carrier.send_audio([b"\x33" * 160] * 5)
        assert await carrier.received_audio(800) == b"\x33" * 800
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    assert len(echo_agent.calls) == 1


@pytest.mark.settings(agent_reconnect_grace_seconds=60)
async def test_agent_closing_its_socket_hangs_up_and_is_not_redialled(
    trunkline: Trunkline,
) -> None:
    """A close frame (1000, as pipecat's EndFrame sends) ends the call at once: BYE, no redial."""
    connections: list[str] = []

    async def close_after_three_frames(connection: ServerConnection) -> None:
        connections.append(connection.request.path)
        frames = 0
        async for message in connection:
            if json.loads(message).get("event") == "media":
                frames += 1
                if frames == 3:
                    await connection.close(1000, "bot finished")
                    return

    async with serve(close_after_three_frames, "127.0.0.1", 0, process_response=audio_mode) as s:
        url = f"ws://127.0.0.1:{s.sockets[0].getsockname()[1]}/agent"
        number = await trunkline.number("auto_accept", url)
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await carrier.invite(NUMBER)).status == 200
            sender = asyncio.create_task(carrier.send_audio([b"\x21" * 160] * 100))
            bye = await carrier.expect_request("BYE", wait_seconds=5)  # grace is 60 s
            sender.cancel()
            assert bye.call_id == carrier.call_id
        finally:
            carrier.close()
        (call,) = await trunkline.services.repository.list_calls(number.organization_id)
        await wait_for_status(trunkline, call.id, "completed")
        await asyncio.sleep(0.3)  # a redial, had there been one, would have connected by now
    stored = await trunkline.services.repository.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "local"
    assert connections == ["/agent"]  # never redialled


class BurstThenDropAgent:
    """A Twilio-persona agent: its first socket queues 3 s of audio at once and then drops
    (no close frame); the redialled socket echoes and notes every frame it is sent."""

    def __init__(self) -> None:
        self.url = ""
        self.sockets: list[list[dict[str, Any]]] = []
        self.redialled_media = asyncio.Event()

    async def handle(self, connection: ServerConnection) -> None:
        seen: list[dict[str, Any]] = []
        self.sockets.append(seen)
        first = len(self.sockets) == 1
        async for message in connection:
            frame = json.loads(message)
            seen.append(frame)
            if frame["event"] == "start" and first:
                burst = base64.b64encode(b"\x22" * 160 * 150).decode()
                await connection.send(json.dumps(
                    {"event": "media", "streamSid": frame["streamSid"],
                     "media": {"payload": burst}}))  # fmt: skip
            elif frame["event"] == "media" and first and len(seen) >= 5:
                connection.transport.abort()  # drops with 2.9 s of its audio still queued
                return
            elif frame["event"] == "media" and not first:
                await connection.send(json.dumps(
                    {"event": "media", "streamSid": frame["streamSid"],
                     "media": {"payload": frame["media"]["payload"]}}))  # fmt: skip
                self.redialled_media.set()


async def test_a_redialled_agent_starts_a_fresh_stream_without_the_old_backlog(
    trunkline: Trunkline,
) -> None:
    agent = BurstThenDropAgent()
    async with serve(agent.handle, "127.0.0.1", 0) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/twilio"
        await trunkline.number("auto_accept", agent.url, agent_protocol="twilio")
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await carrier.invite(NUMBER)).status == 200
            (call,) = trunkline.gateway.calls.values()
            sender = asyncio.create_task(carrier.send_audio([b"\x21" * 160] * 150))
            await asyncio.wait_for(agent.redialled_media.wait(), 10)
            bridge = call.bridge
            assert bridge is not None
            # What the caller hears next is the new socket's echo, not the old 2.9 s burst.
            assert bridge.counters().redial_frames_dropped > 100
            assert bridge.playout.backlog_frames <= 5
            sender.cancel()
            assert (await carrier.bye(NUMBER)).status == 200
        finally:
            carrier.close()
    old, new = agent.sockets
    old_start = next(frame for frame in old if frame["event"] == "start")
    connected, start, media = new[:3]
    assert (connected["event"], start["event"], media["event"]) == ("connected", "start", "media")
    assert start["sequenceNumber"] == "1" and start["streamSid"] != old_start["streamSid"]
    assert start["start"]["callSid"] == old_start["start"]["callSid"]
    assert (media["sequenceNumber"], media["media"]["chunk"], media["media"]["timestamp"]) == (
        "2",
        "1",
        "0",
    )
