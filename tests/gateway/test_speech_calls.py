"""Speech through the phone path, end to end, with real speech both ways.

The caller is a SIP/RTP peer sending sentences spoken by the bundled piper
voice as μ-law; agents are real WebSocket servers. Transcripts come from the
embedded Whisper model, and what the caller hears is transcribed back.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from tests.gateway.conftest import NUMBER, EchoAgent, Trunkline, free_port
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_carrier_streams import (
    AUTH_TOKEN,
    CARRIER_CREDENTIALS,
    answer_twilio_call,
    carrier_base_url,
    twilio_start,
)
from tests.gateway.test_inbound_calls import wait_for_status
from tests.speech.voice import frames, spoken, transcribe_ulaw, word_error_rate
from trunkline.crypto import hash_token, new_token
from trunkline.messaging.carrier_formats import twilio_signature
from trunkline.storage.models import InboundRouting

# One sentence each: a greeting such as "Good morning," is a whole sentence to the
# end-of-turn rule, which may rightly end the turn at the pause after it.
BOOKING = "I would like to book a table for four people."
TIME = "We will arrive at eight o'clock tonight."
GREETING = "You have reached the corner bakery. Please leave a message after the tone."
MESSAGE = "Hi, this is Maria. Please call me back about the birthday cake."


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    return {}  # the defaults: Whisper transcription and piper speech


@dataclass
class SpeechAgent:
    """An Inkbox agent in whichever speech modes its 101 asks for; records every frame."""

    headers: dict[str, str] = field(default_factory=dict)
    on_start: Callable[[ServerConnection], Any] | None = None
    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def modes(self, connection: ServerConnection, request: Request, response: Response) -> None:
        for name, value in self.headers.items():
            response.headers[name] = value

    async def handle(self, connection: ServerConnection) -> None:
        async for message in connection:
            frame = json.loads(message)
            self.events.append(frame)
            self.changed.set()
            if frame.get("event") == "start" and self.on_start is not None:
                await self.on_start(connection)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    async def wait_for(self, test: Callable[[], bool], seconds: float = 30.0) -> None:
        async with asyncio.timeout(seconds):
            while not test():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def speech_agent() -> AsyncIterator[SpeechAgent]:
    agent = SpeechAgent()
    async with serve(agent.handle, "127.0.0.1", 0, process_response=agent.modes) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        yield agent


async def stream_text(connection: ServerConnection, text: str, *, mark: str | None = None) -> None:
    """Send ``text`` as an LLM would: small deltas, then done (and a mark after it)."""
    for i in range(0, len(text), 6):
        await connection.send(json.dumps({"event": "text", "delta": text[i : i + 6]}))
        await asyncio.sleep(0.01)
    await connection.send(json.dumps({"event": "text", "done": True}))
    if mark is not None:
        await connection.send(json.dumps({"event": "mark", "mark": {"name": mark}}))


async def transcripts_of(trunkline: Trunkline, call_id: str, wanted: int) -> list[Any]:
    for _ in range(300):
        segments = await trunkline.services.repository.list_transcripts(call_id)
        if len(segments) >= wanted:
            return segments
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {segments} stored")


async def said_by(trunkline: Trunkline, call_id: str, expected: dict[str, str]) -> dict[str, str]:
    """What each party said in all, once every party's words match ``expected`` (WER ≤ 0.25)
    or after 15 s: a party's speech may be cut into segments at its pauses."""
    said: dict[str, str] = {}
    for _ in range(300):
        segments = await trunkline.services.repository.list_transcripts(call_id)
        said = {party: " ".join(s.text for s in segments if s.party == party) for party in expected}
        if all(word_error_rate(expected[party], said[party]) <= 0.25 for party in expected):
            break
        await asyncio.sleep(0.05)
    return said


async def only_call_id(trunkline: Trunkline, organization_id: str) -> str:
    (call,) = await trunkline.services.repository.list_calls(organization_id)
    return call.id


async def test_stt_mode_sends_partials_and_finals_and_stores_searchable_segments(
    trunkline: Trunkline, speech_agent: SpeechAgent
) -> None:
    number = await trunkline.number("auto_accept", speech_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        audio = frames(spoken(BOOKING), lead_ms=300, tail_ms=1200) + frames(
            spoken(TIME), tail_ms=1200
        )
        await carrier.send_audio(audio)
        finals = lambda: [e for e in speech_agent.of("transcript") if e["is_final"]]  # noqa: E731
        await speech_agent.wait_for(lambda: len(finals()) == 2)
        first, second = finals()
        assert (first["turn_id"], second["turn_id"]) == (1, 2)
        assert word_error_rate(BOOKING, first["text"]) <= 0.25, first
        assert word_error_rate(TIME, second["text"]) <= 0.25, second
        partials = [e for e in speech_agent.of("transcript") if not e["is_final"]]
        assert partials and all(p["turn_id"] in (1, 2) for p in partials)
        assert speech_agent.of("media") == []  # text instead of audio
        assert (await carrier.bye(NUMBER)).status == 200
        call_id = await only_call_id(trunkline, number.organization_id)
        await wait_for_status(trunkline, call_id, "completed")
    finally:
        carrier.close()
    call = await trunkline.services.repository.get_call(call_id)
    assert call is not None and call.use_inkbox_stt and call.use_inkbox_tts
    segments = await transcripts_of(trunkline, call_id, 2)
    assert [(s.seq, s.party) for s in segments] == [(0, "remote"), (1, "remote")]
    assert segments[0].ts_ms < segments[1].ts_ms
    # Through the API: the call's transcript and a search on the number.
    token = new_token()
    await trunkline.services.repository.create_token(
        number.organization_id, None, hash_token(token)
    )
    base = f"http://127.0.0.1:{trunkline.http_port}/api/v1/phone"
    async with aiohttp.ClientSession(headers={"X-API-Key": token}) as http:
        async with http.get(f"{base}/calls/{call_id}/transcripts") as response:
            assert response.status == 200
            listed = await response.json()
        async with http.get(f"{base}/numbers/{number.id}/search", params={"q": "table"}) as found:
            assert found.status == 200
            hits = await found.json()
    items = listed if isinstance(listed, list) else listed["items"]
    assert [item["party"] for item in items] == ["remote", "remote"]
    results = hits if isinstance(hits, list) else hits["items"]
    assert any("table" in hit["text"].lower() for hit in results)
    events = await trunkline.services.repository.list_events(number.organization_id)
    kinds = [e.event_type for e in events]
    assert kinds.count("transcript.segment") == 2
    (ended,) = [e for e in events if e.event_type == "call.ended"]
    assert [t["party"] for t in ended.data["transcript"]] == ["remote", "remote"]


async def test_tts_mode_speaks_the_agent_text_while_it_streams(
    trunkline: Trunkline, speech_agent: SpeechAgent
) -> None:
    reply = "Thanks for calling the bakery. Your cake will be ready on Friday afternoon."
    speech_agent.headers = {"X-Use-Inkbox-Speech-To-Text": "false"}
    speech_agent.on_start = lambda connection: stream_text(connection, reply, mark="spoken")
    number = await trunkline.number("auto_accept", speech_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        await speech_agent.wait_for(lambda: bool(speech_agent.of("mark")))
        heard = await carrier.received_audio(10**7, wait_seconds=0.5)
        await carrier.send_audio(frames(b"", tail_ms=200))  # the caller's line, quiet
        assert (await carrier.bye(NUMBER)).status == 200
        call_id = await only_call_id(trunkline, number.organization_id)
        await wait_for_status(trunkline, call_id, "completed")
    finally:
        carrier.close()
    assert speech_agent.of("mark") == [{"event": "mark", "mark": {"name": "spoken"}}]
    assert len(heard) >= len(spoken(reply)) * 0.9  # the whole reply was played before the mark
    assert word_error_rate(reply, await asyncio.to_thread(transcribe_ulaw, heard)) <= 0.25
    call = await trunkline.services.repository.get_call(call_id)
    assert call is not None and call.use_inkbox_tts and not call.use_inkbox_stt
    assert speech_agent.of("media")  # STT off: the agent got the caller's audio
    segments = await transcripts_of(trunkline, call_id, 1)
    assert [(s.party, s.text) for s in segments if s.party == "local"] == [("local", reply)]


async def test_caller_speech_over_tts_barges_in(
    trunkline: Trunkline, speech_agent: SpeechAgent
) -> None:
    long_reply = (
        "Let me tell you about our menu. We bake bread every morning. "
        "On weekends we also make croissants and fruit tarts. "
        "Our coffee comes from a small farm in Colombia. "
        "We are open every day except Monday."
    )
    speech_agent.on_start = lambda connection: stream_text(connection, long_reply)
    await trunkline.number("auto_accept", speech_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        before = await carrier.received_audio(8000, wait_seconds=20)  # a second of the reply
        assert len(before) >= 8000
        await carrier.send_audio(frames(spoken(TIME), tail_ms=1000))
        await speech_agent.wait_for(lambda: bool(speech_agent.of("barge_in")))
        (barge,) = speech_agent.of("barge_in")
        assert barge["trigger"] == "caller_speech" and barge["tts_interrupted"] is True
        assert barge["turn_id"] == 1
        finals = lambda: [e for e in speech_agent.of("transcript") if e["is_final"]]  # noqa: E731
        await speech_agent.wait_for(lambda: bool(finals()))
        assert finals()[0]["turn_id"] == 1
        assert word_error_rate(TIME, finals()[0]["text"]) <= 0.25
        after = await carrier.received_audio(10**7, wait_seconds=1.0)
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    # What was queued was dropped: the caller heard well under the whole reply.
    assert len(before) + len(after) < 0.6 * len(spoken(long_reply))


async def test_audio_mode_transcribes_both_parties(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    number = await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        await carrier.send_audio(frames(spoken(BOOKING), lead_ms=200, tail_ms=1000))
        await asyncio.sleep(0.5)  # the echo's own trailing silence
        assert (await carrier.bye(NUMBER)).status == 200
        call_id = await only_call_id(trunkline, number.organization_id)
        await wait_for_status(trunkline, call_id, "completed")
    finally:
        carrier.close()
    said = await said_by(trunkline, call_id, {"local": BOOKING, "remote": BOOKING})
    for text in said.values():  # the agent echoed the caller, so both said the same
        assert word_error_rate(BOOKING, text) <= 0.25, text


async def test_voicemail_greets_beeps_records_and_transcribes(trunkline: Trunkline) -> None:
    unreachable = f"ws://127.0.0.1:{free_port(1)}/agent"  # nothing listens there
    number = await trunkline.number(
        "auto_accept", unreachable, inbound_routing=InboundRouting(voicemail_message=GREETING)
    )
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        answer = await carrier.invite(NUMBER)
        assert answer.status == 200, answer
        greeting = spoken(GREETING)
        heard = await carrier.received_audio(int(len(greeting) * 0.9), wait_seconds=30)
        assert word_error_rate(GREETING, transcribe_ulaw(heard[: len(greeting)])) <= 0.3
        await carrier.send_audio(frames(spoken(MESSAGE), lead_ms=200, tail_ms=800))
        assert (await carrier.bye(NUMBER)).status == 200
        call_id = await only_call_id(trunkline, number.organization_id)
        await wait_for_status(trunkline, call_id, "completed")
    finally:
        carrier.close()
    call = await trunkline.services.repository.get_call(call_id)
    assert call is not None and call.hangup_reason == "voicemail"
    segments = await transcripts_of(trunkline, call_id, 2)
    assert [(s.party, s.text) for s in segments if s.party == "system"] == [("system", GREETING)]
    message = (await said_by(trunkline, call_id, {"remote": MESSAGE}))["remote"]
    assert word_error_rate(MESSAGE, message) <= 0.25, message
    for _ in range(100):
        call = await trunkline.services.repository.get_call(call_id)
        if call is not None and call.recording_key:
            break
        await asyncio.sleep(0.05)
    assert call is not None and call.recording_key


@CARRIER_CREDENTIALS
async def test_voicemail_on_a_carrier_media_stream(trunkline: Trunkline) -> None:
    base = carrier_base_url(trunkline)
    unreachable = f"ws://127.0.0.1:{free_port(1)}/agent"
    number = await trunkline.number(
        "auto_accept", unreachable, inbound_routing=InboundRouting(voicemail_message=GREETING)
    )
    url = f"{base}/twilio/media-stream"
    headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, [])}
    greeting = spoken(GREETING)
    async with aiohttp.ClientSession() as http:
        parameters = await answer_twilio_call(http, trunkline)
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await ws.send_json(twilio_start(**parameters))
        heard = bytearray()
        async with asyncio.timeout(30):
            while len(heard) < len(greeting) * 0.9:
                frame = json.loads((await ws.receive()).data)
                payload = base64.b64decode(frame["media"]["payload"])
                if payload.strip(b"\xff"):
                    heard += payload
        assert word_error_rate(GREETING, transcribe_ulaw(bytes(heard[: len(greeting)]))) <= 0.3
        for index, frame in enumerate(frames(spoken(MESSAGE), lead_ms=200, tail_ms=800)):
            await ws.send_json(
                {
                    "event": "media",
                    "sequenceNumber": str(index + 2),
                    "streamSid": "MZ" + "0" * 32,
                    "media": {"track": "inbound", "chunk": str(index + 1),
                              "payload": base64.b64encode(frame).decode()},
                }
            )  # fmt: skip
            await asyncio.sleep(0.02)
        await ws.send_json({"event": "stop", "streamSid": "MZ" + "0" * 32})
    call_id = await only_call_id(trunkline, number.organization_id)
    await wait_for_status(trunkline, call_id, "completed")
    call = await trunkline.services.repository.get_call(call_id)
    assert call is not None and call.hangup_reason == "voicemail"
    await transcripts_of(trunkline, call_id, 2)
    message = (await said_by(trunkline, call_id, {"remote": MESSAGE}))["remote"]
    assert word_error_rate(MESSAGE, message) <= 0.25, message
