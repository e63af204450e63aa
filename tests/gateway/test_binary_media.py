"""Binary media frames to the agent, offered in trunkline's upgrade request and accepted
(or not) by the agent's 101, over real SIP/RTP calls to a real WebSocket agent."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from tests.example_agents import example_agent
from tests.gateway.conftest import NUMBER, PASS_THROUGH, Trunkline, audio_mode
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_agent_personas import best_snr_db, tone_ulaw
from trunkline.agent.formats import AGENT_FORMATS, CallerToAgent
from trunkline.agent.inkbox_protocol import binary_media_accepted

OFFER = "x-trunkline-media-frames"


@dataclass
class Heard:
    """What one call's agent connection was offered and received."""

    headers: dict[str, str]
    binary: list[bytes] = field(default_factory=list)  # binary frames, in order
    json_media: list[bytes] = field(default_factory=list)  # decoded ``media`` payloads
    events: list[dict[str, Any]] = field(default_factory=list)  # every other text frame
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FramesAgent:
    """An echo agent: binary frames back as binary frames, JSON ``media`` back as JSON.

    ``accept``: its 101 answers ``X-Trunkline-Media-Frames: binary``.
    """

    accept: bool
    url: str = ""
    calls: list[Heard] = field(default_factory=list)

    def answer(self, connection: ServerConnection, request: Request, response: Response) -> None:
        audio_mode(connection, request, response)
        if self.accept:
            response.headers["X-Trunkline-Media-Frames"] = "binary"

    async def handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        heard = Heard({k.lower(): v for k, v in connection.request.headers.raw_items()})
        self.calls.append(heard)
        try:
            async for message in connection:
                if isinstance(message, bytes):
                    heard.binary.append(message)
                    await connection.send(message)  # raw audio in the call's format
                    continue
                frame = json.loads(message)
                if frame.get("event") == "media":
                    payload = frame["media"]["payload"]
                    heard.json_media.append(base64.b64decode(payload))
                    await connection.send(
                        json.dumps({"event": "media", "media": {"payload": payload}})
                    )
                else:
                    heard.events.append(frame)
        finally:
            heard.closed.set()


@pytest.fixture(params=[True, False], ids=["accepts", "ignores"])
async def frames_agent(request: pytest.FixtureRequest) -> AsyncIterator[FramesAgent]:
    agent = FramesAgent(accept=request.param)
    async with serve(agent.handle, "127.0.0.1", 0, process_response=agent.answer) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        yield agent


async def call_with(
    trunkline: Trunkline, agent: FramesAgent, frames: list[bytes], echo_bytes: int
) -> tuple[Heard, bytes]:
    """One call: ``frames`` of μ-law from the carrier; returns what the agent heard and
    the audio the carrier got back."""
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        await carrier.send_audio(frames)
        echoed = await carrier.received_audio(echo_bytes, wait_seconds=5)
        assert (await carrier.bye(NUMBER)).status == 200
        (heard,) = agent.calls
        await asyncio.wait_for(heard.closed.wait(), 5)
    finally:
        carrier.close()
    return heard, echoed


@PASS_THROUGH
async def test_mulaw_binary_frames_only_for_an_agent_that_accepts(
    trunkline: Trunkline, frames_agent: FramesAgent
) -> None:
    await trunkline.number("auto_accept", frames_agent.url)
    frames = [bytes([0x10 + i]) * 80 + bytes(range(0x40, 0x40 + 80)) for i in range(20)]
    heard, echoed = await call_with(trunkline, frames_agent, frames, 20 * 160)
    assert heard.headers[OFFER] == "binary"  # offered to every Inkbox agent
    if frames_agent.accept:
        assert heard.binary == frames  # one frame per packet: the caller's bytes, in order
        assert heard.json_media == []
    else:  # exactly today's frames
        assert heard.binary == []
        assert heard.json_media == frames
    # start and stop stay JSON text either way; the agent's audio reaches the caller either way
    assert [frame["event"] for frame in heard.events] == ["start", "stop"]
    assert heard.events[0]["start"]["media_format"]["encoding"] == "audio/x-mulaw"
    assert echoed == b"".join(frames)


@PASS_THROUGH
async def test_a_pcm16_16k_agent_gets_its_own_audio_in_binary_frames_and_speaks_back(
    trunkline: Trunkline,
) -> None:
    agent = FramesAgent(accept=True)
    async with serve(agent.handle, "127.0.0.1", 0, process_response=agent.answer) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        await trunkline.number("auto_accept", agent.url, agent_audio="pcm16_16k")
        frames = tone_ulaw(60)
        heard, echoed = await call_with(trunkline, agent, frames, 55 * 160)
    # Each binary frame is 20 ms of s16le at 16 kHz: exactly what the call's converter makes
    # of the caller's frames, one for one.
    expected = CallerToAgent(AGENT_FORMATS["pcm16_16k"], codec="PCMU")
    assert [len(frame) for frame in heard.binary] == [640] * 60
    assert heard.binary == [bytes(expected.convert(frame)) for frame in frames]
    assert heard.json_media == []
    assert heard.events[0]["start"]["media_format"]["sample_rate"] == 16000
    # The agent's binary frames (PCM16 at 16 kHz) were played to the caller.
    assert best_snr_db(b"".join(frames), echoed) >= 30.0


@PASS_THROUGH
async def test_the_twilio_persona_is_never_offered_binary_frames(trunkline: Trunkline) -> None:
    agent = FramesAgent(accept=True)  # even an agent that answers the header gets Twilio's JSON
    async with serve(agent.handle, "127.0.0.1", 0, process_response=agent.answer) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        await trunkline.number("auto_accept", agent.url, agent_protocol="twilio")
        frames = [bytes([0x30 + i]) * 160 for i in range(10)]
        heard, echoed = await call_with(trunkline, agent, frames, 10 * 160)
    assert OFFER not in heard.headers
    assert heard.binary == [] and heard.json_media == frames
    assert echoed == b"".join(frames)


@PASS_THROUGH
async def test_the_echo_example_with_binary_echoes_binary_frames(trunkline: Trunkline) -> None:
    async with example_agent("echo_agent", "--binary") as agent:
        await trunkline.number("auto_accept", agent.url)
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            assert (await carrier.invite(NUMBER)).status == 200
            frames = [bytes([0x50 + i]) * 160 for i in range(15)]
            await carrier.send_audio(frames)
            assert await carrier.received_audio(15 * 160, wait_seconds=5) == b"".join(frames)
            assert (await carrier.bye(NUMBER)).status == 200
        finally:
            carrier.close()
        await agent.wait_for_line("caller audio arrives in binary frames")
        await agent.wait_for_line("call ended after 15 echoed frames")


@pytest.mark.parametrize(
    ("answer", "accepted"),
    [
        ({"x-trunkline-media-frames": "binary"}, True),
        ({"x-trunkline-media-frames": " Binary "}, True),
        ({"x-trunkline-media-frames": "json"}, False),
        ({"x-trunkline-media-frames": ""}, False),
        ({}, False),
    ],
)
def test_only_a_binary_answer_accepts(answer: dict[str, str], accepted: bool) -> None:
    assert binary_media_accepted(answer) is accepted
