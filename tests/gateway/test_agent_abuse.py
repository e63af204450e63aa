"""Agents that misbehave on purpose: frames trunkline cannot parse, and floods it must not buffer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.gateway.conftest import NUMBER, Trunkline, audio_mode
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_inbound_calls import wait_for_status
from tests.gateway.test_metrics import scrape, value
from trunkline.agent.inkbox_protocol import mark_frame
from trunkline.agent.link import DEFAULT_MAX_BUFFER_BYTES
from trunkline.media.playout import MAX_PENDING_MARKS


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
    labels = {"persona": "inkbox", "reason": "too_deep"}
    assert value(after, rejected, **labels) - value(before, rejected, **labels) == 1
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, call.id, "completed")
    stored = await trunkline.services.repository.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "remote"


async def test_an_agent_that_floods_marks_without_reading_ends_its_call(
    trunkline: Trunkline,
) -> None:
    name = "m" * 200
    started, go = asyncio.Event(), asyncio.Event()

    async def flooding_agent(connection: ServerConnection) -> None:
        await connection.recv()  # start; nothing is read after it
        started.set()
        await go.wait()
        mark = json.dumps({"event": "mark", "mark": {"name": name}})
        with contextlib.suppress(ConnectionClosed):
            for _ in range(40_000):  # ~10 MB of echoes if trunkline kept them all
                await connection.send(mark)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accept
    listener.bind(("127.0.0.1", 0))
    async with serve(
        flooding_agent, sock=listener, max_queue=1, close_timeout=0.5, process_response=audio_mode
    ) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        number = await trunkline.number("auto_accept", url)
        before = await scrape(trunkline)
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await carrier.invite(NUMBER)).status == 200
            await asyncio.wait_for(started.wait(), 5)
            (call,) = trunkline.gateway.calls.values()
            assert call.bridge is not None and call.bridge.link is not None
            link = call.bridge.link
            go.set()
            await carrier.expect_request("BYE", wait_seconds=30)  # trunkline ends the call
        finally:
            carrier.close()
    assert link.overflowed
    echo = len(mark_frame(name)) + 4  # one server-bound frame: 4 bytes of WebSocket header
    assert DEFAULT_MAX_BUFFER_BYTES < link.peak_buffered_bytes <= DEFAULT_MAX_BUFFER_BYTES + echo
    after = await scrape(trunkline)
    overflows = "trunkline_agent_send_overflow_total"
    assert value(after, overflows) - value(before, overflows) == 1
    (record,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, record.id, "completed")
    stored = await trunkline.services.repository.get_call(record.id)
    assert stored is not None and stored.hangup_reason == "agent_overflow"


async def test_an_agent_that_floods_pings_without_reading_ends_its_call(
    trunkline: Trunkline,
) -> None:
    started, go = asyncio.Event(), asyncio.Event()

    async def pinging_agent(connection: ServerConnection) -> None:
        await connection.recv()  # start; nothing is read after it, pongs included
        started.set()
        await go.wait()
        with contextlib.suppress(ConnectionClosed):
            for index in range(40_000):  # ~5 MB of pongs if trunkline answered them all
                await connection.ping(index.to_bytes(4, "big") * 31)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accept
    listener.bind(("127.0.0.1", 0))
    async with serve(
        pinging_agent, sock=listener, max_queue=1, close_timeout=0.5, ping_interval=None,
        process_response=audio_mode,
    ) as server:  # fmt: skip
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        number = await trunkline.number("auto_accept", url)
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await carrier.invite(NUMBER)).status == 200
            await asyncio.wait_for(started.wait(), 5)
            (call,) = trunkline.gateway.calls.values()
            assert call.bridge is not None and call.bridge.link is not None
            link = call.bridge.link
            go.set()
            await carrier.expect_request("BYE", wait_seconds=30)
        finally:
            carrier.close()
    assert link.overflowed
    pong = 2 + 124  # one pong frame: header and the ping's payload
    assert link.peak_buffered_bytes <= DEFAULT_MAX_BUFFER_BYTES + pong
    (record,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, record.id, "completed")
    stored = await trunkline.services.repository.get_call(record.id)
    assert stored is not None and stored.hangup_reason == "agent_overflow"


async def test_marks_waiting_for_their_audio_are_bounded(trunkline: Trunkline) -> None:
    sent = 3 * MAX_PENDING_MARKS
    echoes: list[str] = []
    all_sent, done = asyncio.Event(), asyncio.Event()

    async def marking_agent(connection: ServerConnection) -> None:
        await connection.recv()  # start
        ten_seconds = base64.b64encode(b"\x20" * 80_000).decode()
        await connection.send(json.dumps({"event": "media", "media": {"payload": ten_seconds}}))
        for index in range(sent):  # all behind the audio: none can be echoed yet
            await connection.send(json.dumps({"event": "mark", "mark": {"name": str(index)}}))
        all_sent.set()
        async for message in connection:
            frame = json.loads(message)
            if frame["event"] == "mark":
                echoes.append(frame["mark"]["name"])
            elif frame["event"] == "stop":
                done.set()

    async with serve(marking_agent, "127.0.0.1", 0, process_response=audio_mode) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        await trunkline.number("auto_accept", url)
        before = await scrape(trunkline)
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await carrier.invite(NUMBER)).status == 200
            await asyncio.wait_for(all_sent.wait(), 10)
            (call,) = trunkline.gateway.calls.values()
            assert call.bridge is not None
            for _ in range(200):  # until trunkline has read every mark the agent sent
                if call.bridge.counters().agent_frames_rejected == sent - MAX_PENDING_MARKS:
                    break
                await asyncio.sleep(0.02)
            assert call.bridge.playout.pending_marks == MAX_PENDING_MARKS
            assert (await carrier.bye(NUMBER)).status == 200
            await asyncio.wait_for(done.wait(), 5)
        finally:
            carrier.close()
    assert echoes == []  # the audio never finished playing: no mark came back early
    after = await scrape(trunkline)
    rejected = "trunkline_agent_frames_rejected_total"
    labels = {"persona": "inkbox", "reason": "too_many_marks"}
    assert value(after, rejected, **labels) - value(before, rejected, **labels) == (
        sent - MAX_PENDING_MARKS
    )
