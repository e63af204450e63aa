"""Agents that misbehave on purpose: frames trunkline cannot parse, and floods it must not buffer."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.server import ServerConnection, serve

from tests.gateway.conftest import NUMBER, Trunkline, audio_mode
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_inbound_calls import wait_for_status
from tests.gateway.test_metrics import scrape, value


async def test_a_deeply_nested_frame_is_dropped_and_the_call_goes_on(
    trunkline: Trunkline,
) -> None:
    connections: list[ServerConnection] = []
    marks: list[str] = []
    echoed = asyncio.Event()

    async def nesting_agent(connection: ServerConnection) -> None:
        connections.append(connection)
        async for message in connection:
            frame = json.loads(message)
            if frame["event"] == "start":
                await connection.send("[" * 50_000)  # deeper than the JSON decoder recurses
                await connection.send(json.dumps({"event": "mark", "mark": {"name": "after"}}))
            elif frame["event"] == "mark":
                marks.append(frame["mark"]["name"])
                echoed.set()

    async with serve(nesting_agent, "127.0.0.1", 0, process_response=audio_mode) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        number = await trunkline.number("auto_accept", url)
        before = await scrape(trunkline)
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await carrier.invite(NUMBER)).status == 200
            await asyncio.wait_for(echoed.wait(), 10)
            # The frame after the nested one was handled on the same socket: no redial.
            assert marks == ["after"] and len(connections) == 1
            assert len(trunkline.gateway.calls) == 1
            assert (await carrier.bye(NUMBER)).status == 200
        finally:
            carrier.close()
    after = await scrape(trunkline)
    rejected = "trunkline_agent_frames_rejected_total"
    assert value(after, rejected) - value(before, rejected) == 1
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, call.id, "completed")
    stored = await trunkline.services.repository.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "remote"
