"""Carrier media-stream WebSockets (Twilio and Telnyx formats) bridged to real agents."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest

from tests.codecs.oracle import audioop
from tests.gateway.conftest import NUMBER, EchoAgent, MarkingAgent, Trunkline, audio_mode
from tests.gateway.test_inbound_calls import wait_for_status
from tests.gateway.test_metrics import scrape, value
from trunkline.messaging.carrier_formats import twilio_signature

AUTH_TOKEN = "twilio-auth-token-for-tests"
STREAM_TOKEN = "telnyx-stream-token-for-tests"
CALLER = "+14155550123"


# The carriers' credentials the media-stream tests present.
CARRIER_CREDENTIALS = pytest.mark.settings(
    twilio_auth_token=AUTH_TOKEN, telnyx_stream_token=STREAM_TOKEN
)
pytestmark = CARRIER_CREDENTIALS


def carrier_base_url(trunkline: Trunkline) -> str:
    """Where the carriers' media-stream WebSockets connect (``CARRIER_CREDENTIALS`` set)."""
    return f"ws://127.0.0.1:{trunkline.http_port}/carrier"


def twilio_start(**custom: str) -> dict[str, Any]:
    return {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ" + "0" * 32,
        "start": {
            "streamSid": "MZ" + "0" * 32,
            "accountSid": "AC" + "1" * 32,
            "callSid": "CA" + "2" * 32,
            "tracks": ["inbound"],
            "customParameters": {"to": NUMBER, "from": CALLER, **custom},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }


async def answer_twilio_call(http: aiohttp.ClientSession, trunkline: Trunkline) -> dict[str, str]:
    """Twilio's voice webhook for the call ``twilio_start`` names: the TwiML's stream parameters."""
    url = f"http://127.0.0.1:{trunkline.http_port}/carrier/twilio/voice"
    fields = {"CallSid": "CA" + "2" * 32, "To": NUMBER, "From": CALLER}
    headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, list(fields.items()))}
    async with http.post(url, data=fields, headers=headers) as response:
        assert response.status == 200
        stream = ElementTree.fromstring(await response.text()).find("./Connect/Stream")
    assert stream is not None
    return {item.get("name", ""): item.get("value", "") for item in stream.findall("Parameter")}


def telnyx_start(encoding: str = "PCMA") -> dict[str, Any]:
    return {
        "event": "start",
        "sequence_number": "1",
        "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
        "start": {
            "call_control_id": "v2:abc",
            "call_session_id": "ff55a038",
            "from": CALLER,
            "to": NUMBER,
            "custom_parameters": {},
            "media_format": {"encoding": encoding, "sample_rate": 8000, "channels": 1},
        },
    }


async def collect_media(ws: aiohttp.ClientWebSocketResponse, wanted: int) -> tuple[bytes, list]:
    audio, frames = bytearray(), []
    async with asyncio.timeout(10):
        while len(audio) < wanted:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frame = json.loads(message.data)
            frames.append(frame)
            audio += base64.b64decode(frame["media"]["payload"])
    return bytes(audio), frames


@pytest.mark.parametrize("agent_protocol", ["inkbox", "twilio"])
async def test_twilio_stream_round_trips_audio_and_dtmf_then_stops(
    trunkline: Trunkline, echo_agent: EchoAgent, agent_protocol: str
) -> None:
    base = carrier_base_url(trunkline)
    number = await trunkline.number("auto_accept", echo_agent.url, agent_protocol=agent_protocol)
    url = f"{base}/twilio/media-stream"
    headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, [])}
    frames = [bytes([0x30 + i]) * 160 for i in range(25)]
    async with aiohttp.ClientSession() as http:
        parameters = await answer_twilio_call(http, trunkline)
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await ws.send_json(twilio_start(**parameters))
        for index, frame in enumerate(frames):
            payload = base64.b64encode(frame).decode()
            await ws.send_json(
                {
                    "event": "media",
                    "sequenceNumber": str(index + 2),
                    "streamSid": "MZ" + "0" * 32,
                    "media": {"track": "inbound", "chunk": str(index + 1), "payload": payload},
                }
            )
        await ws.send_json({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "7"}})
        echoed, sent = await collect_media(ws, 25 * 160)
        assert echoed == b"".join(frames)  # μ-law end to end, sample-exact
        assert sent[0]["streamSid"] == "MZ" + "0" * 32
        await ws.send_json({"event": "stop", "streamSid": "MZ" + "0" * 32})
        await asyncio.wait_for(ws.receive(), 5)  # trunkline closes
    (agent,) = echo_agent.calls
    await asyncio.wait_for(agent.closed.wait(), 5)
    assert agent.digits == ["7"]
    if agent_protocol == "inkbox":
        assert agent.events[-1] == {"event": "stop", "reason": "remote"}
    else:
        assert agent.events[0]["event"] == "connected"
        assert agent.events[-1]["event"] == "stop" and "callSid" in agent.events[-1]["stop"]
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, call.id, "completed")
    stored = await trunkline.services.repository.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "remote"
    assert stored.remote_phone_number == CALLER


async def test_telnyx_stream_reorders_frames_and_transcodes_pcma(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    base = carrier_base_url(trunkline)
    await trunkline.number("auto_accept", echo_agent.url)
    url = f"{base}/telnyx/media-stream"
    rng = random.Random(5)
    frames = [bytes(rng.randrange(256) for _ in range(160)) for _ in range(30)]
    numbered = [(index + 2, frame) for index, frame in enumerate(frames)]
    shuffled = []
    for start in range(0, len(numbered), 5):  # out of order within windows of five
        window = numbered[start : start + 5]
        rng.shuffle(window)
        shuffled += window
    headers = {"x-telnyx-streaming-auth-token": STREAM_TOKEN}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_json({"event": "connected", "version": "1.0.0"})
        await ws.send_json(telnyx_start("PCMA"))
        for sequence, frame in shuffled:
            await ws.send_json(
                {
                    "event": "media",
                    "sequence_number": str(sequence),
                    "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
                    "media": {"track": "inbound", "payload": base64.b64encode(frame).decode()},
                }
            )
        echoed, _ = await collect_media(ws, 30 * 160)
        await ws.send_json({"event": "stop", "sequence_number": "40"})
    (agent,) = echo_agent.calls
    await asyncio.wait_for(agent.closed.wait(), 5)
    assert agent.events[0]["start"]["media_format"]["encoding"] == "audio/x-mulaw"
    original = b"".join(frames)
    as_mulaw = audioop.lin2ulaw(audioop.alaw2lin(original, 2), 2)
    assert echoed == audioop.lin2alaw(audioop.ulaw2lin(as_mulaw, 2), 2)  # in order, as A-law


async def test_agent_stop_closes_the_carrier_stream(trunkline: Trunkline) -> None:
    base = carrier_base_url(trunkline)
    stopping = EchoAgent(hang_up_after_media=3)
    from websockets.asyncio.server import serve

    async with serve(stopping.handle, "127.0.0.1", 0, process_response=audio_mode) as server:
        stopping.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        number = await trunkline.number("auto_accept", stopping.url)
        url = f"{base}/telnyx/media-stream"
        headers = {"x-telnyx-streaming-auth-token": STREAM_TOKEN}
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
            await ws.send_json(telnyx_start("PCMU"))
            for _ in range(10):
                payload = base64.b64encode(b"\x11" * 160).decode()
                await ws.send_json({"event": "media", "media": {"payload": payload}})
            async with asyncio.timeout(5):
                while (await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                    pass
            assert ws.closed
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, call.id, "completed")
    stored = await trunkline.services.repository.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "local"


@pytest.mark.parametrize(
    ("path", "headers", "detail"),
    [
        ("twilio", {}, "missing X-Twilio-Signature"),
        ("twilio", {"X-Twilio-Signature": "bm90IGl0"}, "Twilio signature does not match"),
        ("telnyx", {}, "Telnyx streaming auth token does not match"),
        (
            "telnyx",
            {"x-telnyx-streaming-auth-token": "guess"},
            "Telnyx streaming auth token does not match",
        ),
    ],
)
async def test_unsigned_streams_are_refused_before_the_upgrade(
    trunkline: Trunkline, path: str, headers: dict[str, str], detail: str
) -> None:
    base = carrier_base_url(trunkline)
    url = f"{base}/{path}/media-stream".replace("ws://", "http://")
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(), **headers}  # fmt: skip
    async with aiohttp.ClientSession() as http, http.get(url, headers=upgrade) as response:
        assert response.status == 403
        assert await response.json() == {"detail": detail}
    assert not trunkline.gateway.calls


async def test_unknown_number_and_missing_start_close_with_policy_violation(
    trunkline: Trunkline,
) -> None:
    base = carrier_base_url(trunkline)
    url = f"{base}/telnyx/media-stream"
    headers = {"x-telnyx-streaming-auth-token": STREAM_TOKEN}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, headers=headers) as ws:
            await ws.send_json(telnyx_start())  # nobody owns NUMBER here
            message = await asyncio.wait_for(ws.receive(), 5)
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1008
        async with http.ws_connect(url, headers=headers) as ws:
            await ws.send_json({"event": "media", "media": {"payload": "AAAA"}})
            message = await asyncio.wait_for(ws.receive(), 5)
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1008


@pytest.mark.parametrize("agent_protocol", ["inkbox", "twilio"])
async def test_marks_come_back_after_their_audio_reached_the_carrier_stream(
    trunkline: Trunkline, marking_agent: MarkingAgent, agent_protocol: str
) -> None:
    base = carrier_base_url(trunkline)
    await trunkline.number("auto_accept", marking_agent.url, agent_protocol=agent_protocol)
    headers = {"x-telnyx-streaming-auth-token": STREAM_TOKEN}
    url = f"{base}/telnyx/media-stream"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_json(telnyx_start("PCMU"))
        played, _ = await collect_media(ws, 2400)
        await asyncio.wait_for(marking_agent.done.wait(), 5)
        await ws.send_json({"event": "stop"})
    assert played == b"\x20" * 800 + b"\x21" * 800 + b"\x22" * 800
    assert [name for name, _ in marking_agent.marks] == ["m0", "m1", "m2"]


async def test_a_deeply_nested_carrier_frame_is_dropped_and_the_call_goes_on(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    base = carrier_base_url(trunkline)
    await trunkline.number("auto_accept", echo_agent.url)
    url = f"{base}/telnyx/media-stream"
    headers = {"x-telnyx-streaming-auth-token": STREAM_TOKEN}
    rejected = ("trunkline_carrier_stream_frames_rejected_total", {"dialect": "telnyx"})
    before = value(await scrape(trunkline), rejected[0], **rejected[1])
    frames = [bytes([0x40 + i]) * 160 for i in range(10)]
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_json(telnyx_start("PCMU"))
        await ws.send_str("[" * 50_000)  # deeper than the JSON decoder recurses
        for frame in frames:
            payload = base64.b64encode(frame).decode()
            await ws.send_json({"event": "media", "media": {"payload": payload}})
        echoed, _ = await collect_media(ws, 10 * 160)
        assert echoed == b"".join(frames)  # the frames after it still reached the agent
        await ws.send_json({"event": "stop"})
    (agent,) = echo_agent.calls
    await asyncio.wait_for(agent.closed.wait(), 5)
    assert value(await scrape(trunkline), rejected[0], **rejected[1]) - before == 1


async def test_late_carrier_frames_are_dropped_and_counted(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    base = carrier_base_url(trunkline)
    await trunkline.number("auto_accept", echo_agent.url)
    url = f"{base}/telnyx/media-stream"
    headers = {"x-telnyx-streaming-auth-token": STREAM_TOKEN}
    late = (
        "trunkline_carrier_stream_frames_dropped_total",
        {"dialect": "telnyx", "reason": "late"},
    )
    before = value(await scrape(trunkline), late[0], **late[1])
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_json(telnyx_start("PCMU"))
        for sequence in (2, 3, 2, 4):  # the second 2 comes after 3 was delivered
            payload = base64.b64encode(bytes([0x50 + sequence]) * 160).decode()
            await ws.send_json(
                {"event": "media", "sequence_number": str(sequence), "media": {"payload": payload}}
            )
        echoed, _ = await collect_media(ws, 3 * 160)
        assert echoed == b"\x52" * 160 + b"\x53" * 160 + b"\x54" * 160
        await ws.send_json({"event": "stop", "sequence_number": "5"})
        await asyncio.wait_for(ws.receive(), 5)  # trunkline closes
    (agent,) = echo_agent.calls
    await asyncio.wait_for(agent.closed.wait(), 5)
    for _ in range(100):  # counted when the call's media stops
        if value(await scrape(trunkline), late[0], **late[1]) - before == 1:
            break
        await asyncio.sleep(0.05)
    assert value(await scrape(trunkline), late[0], **late[1]) - before == 1


async def test_streams_to_an_auto_reject_number_store_records_only_within_the_rate(
    trunkline: Trunkline,
) -> None:
    """Rejected streams are closed at once; rows follow at the per-number record rate only."""
    base = carrier_base_url(trunkline)
    number = await trunkline.number("auto_reject", None)
    url = f"{base}/telnyx/media-stream"
    headers = {"x-telnyx-streaming-auth-token": STREAM_TOKEN}
    unrecorded = "trunkline_rejected_calls_unrecorded_total"
    before = value(await scrape(trunkline), unrecorded)
    streams = 25  # more than the burst of records a number gets (10)
    async with aiohttp.ClientSession() as http:
        for _ in range(streams):
            async with http.ws_connect(url, headers=headers) as ws:
                await ws.send_json(telnyx_start())
                message = await asyncio.wait_for(ws.receive(), 5)
                assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1000
    repository = trunkline.services.repository
    async with asyncio.timeout(5):
        while True:
            stored = await repository.list_calls(number.organization_id, limit=100)
            skipped = value(await scrape(trunkline), unrecorded) - before
            if len(stored) + skipped == streams:
                break
            await asyncio.sleep(0.05)
    assert 1 <= len(stored) < streams and skipped >= 1
    assert {(call.status, call.hangup_reason) for call in stored} == {("failed", "rejected")}
