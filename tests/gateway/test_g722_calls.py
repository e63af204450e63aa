"""A G.722 call end to end: the carrier sends wideband audio, a real WebSocket agent hears it
as PCM16 at 16 kHz (a 6 kHz tone, beyond G.711's band, arrives intact), the agent's audio
comes back as G.722 RTP (payload type 9, 160 bytes and 160 timestamp ticks per 20 ms), and the
call is recorded (at 8 kHz, as every call)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.gateway.conftest import NUMBER, Api, EchoAgent, Trunkline, audio_mode
from tests.gateway.sip_peer import CarrierCall, bind_udp
from tests.gateway.test_outbound_calls import place, register_byo_number, wait_status
from trunkline.codecs.g722 import G722Decoder, G722Encoder
from trunkline.gateway.rtp.packet import build_packet, parse_packet
from trunkline.gateway.sip.message import SipRequest, parse_message, response_to
from trunkline.gateway.sip.sdp import build_sdp, parse_sdp
from trunkline.storage.blobs import LocalBlobStore

WIDEBAND = 16_000


def tone(
    hz: float, seconds: float, amplitude: float = 8000, rate: int = WIDEBAND
) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2")


def dominant_hz(samples: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


@dataclass
class WidebandAgent:
    """Keeps the PCM16 it is sent; answers the start with a second of a 1 kHz tone at 16 kHz."""

    url: str = ""
    start: dict[str, Any] = field(default_factory=dict)
    heard: bytearray = field(default_factory=bytearray)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, connection: ServerConnection) -> None:
        try:
            async for message in connection:
                frame = json.loads(message)
                if frame.get("event") == "start":
                    self.start = frame["start"]
                    audio = tone(1000, 1.0).tobytes()
                    for offset in range(0, len(audio), 6400):  # 200 ms chunks
                        payload = base64.b64encode(audio[offset : offset + 6400]).decode()
                        await connection.send(
                            json.dumps({"event": "media", "media": {"payload": payload}})
                        )
                elif frame.get("event") == "media":
                    self.heard += base64.b64decode(frame["media"]["payload"])
        finally:
            self.closed.set()


@pytest.fixture
async def wideband_agent() -> AsyncIterator[WidebandAgent]:
    agent = WidebandAgent()
    async with serve(agent.handle, "127.0.0.1", 0, process_response=audio_mode) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        yield agent


def g722_frames(samples: npt.NDArray[np.int16]) -> list[bytes]:
    encoder = G722Encoder()
    return [encoder.encode(samples[i : i + 320].tobytes()) for i in range(0, len(samples), 320)]


@pytest.mark.settings(sip_codecs="PCMU,PCMA,G722")
async def test_g722_caller_reaches_a_16k_agent_in_wideband(
    trunkline: Trunkline, wideband_agent: WidebandAgent
) -> None:
    number = await trunkline.number("auto_accept", wideband_agent.url, agent_audio="pcm16_16k")
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        answer = await carrier.invite(NUMBER, "9 0 101")  # G.722 preferred by the caller
        assert answer.status == 200
        negotiated = parse_sdp(answer.body)
        assert negotiated.payload_types[0] == 9
        assert negotiated.rtpmap[9] == "G722/8000"
        # 6 kHz (only wideband carries it) over a quieter 500 Hz (what an 8 kHz recording keeps).
        caller = tone(6000, 1.0) + tone(500, 1.0, amplitude=3000)
        await carrier.send_audio(g722_frames(caller), payload_type=9)
        packets = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(packets) < 80 and loop.time() < deadline:
            data = await asyncio.wait_for(carrier.rtp_inbox.queue.get(), 10)
            packet = parse_packet(data)
            if packet.payload_type == 9:
                packets.append((packet.timestamp, bytes(packet.payload)))
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()

    await asyncio.wait_for(wideband_agent.closed.wait(), 10)
    assert wideband_agent.start["media_format"]["sample_rate"] == WIDEBAND
    heard = np.frombuffer(bytes(wideband_agent.heard), dtype="<i2")
    assert len(heard) >= WIDEBAND * 0.8  # most of the second arrived, at 16 kHz
    middle = heard[len(heard) // 4 : len(heard) * 3 // 4]
    assert abs(dominant_hz(middle, WIDEBAND) - 6000) < 50  # wideband all the way

    assert len(packets) >= 60
    assert {len(payload) for _, payload in packets} == {160}
    steps = {(b[0] - a[0]) & 0xFFFFFFFF for a, b in zip(packets, packets[1:], strict=False)}
    assert steps == {160}  # the RTP clock of G.722 is 8000 (RFC 3551)
    decoder = G722Decoder()
    back = np.frombuffer(b"".join(decoder.decode(p) for _, p in packets), dtype="<i2")
    loud = back[np.abs(back) > 0]
    assert len(loud) > WIDEBAND * 0.5
    assert abs(dominant_hz(back, WIDEBAND) - 1000) < 50  # the agent's tone, as G.722

    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    for _ in range(200):
        stored = await trunkline.services.repository.get_call(call.id)
        if stored is not None and stored.recording_key:
            break
        await asyncio.sleep(0.025)
    assert stored is not None and stored.recording_key
    blobs = trunkline.services.blob_store
    assert isinstance(blobs, LocalBlobStore)
    data = await asyncio.to_thread(blobs.path_for(stored.recording_key).read_bytes)
    with wave.open(io.BytesIO(data)) as recording:
        channels, rate = recording.getnchannels(), recording.getframerate()
        frames = np.frombuffer(recording.readframes(recording.getnframes()), dtype="<i2")
    recorded = frames.reshape(-1, channels)[:, 0]
    assert rate == 8000
    assert np.sqrt(np.mean(recorded.astype(np.float64) ** 2)) > 1000  # the caller was recorded
    assert abs(dominant_hz(recorded, 8000) - 500) < 20


class WidebandTrunk:
    """A trunk that answers every INVITE with G.722 only, then streams a 500 Hz tone as G.722
    and keeps the RTP trunkline sends back."""

    def __init__(self) -> None:
        self.offer: list[int] = []
        self.packets: list[tuple[int, int, bytes]] = []  # payload type, timestamp, payload
        self.bye = asyncio.Event()

    async def __aenter__(self) -> WidebandTrunk:
        self.transport, self.inbox, self.port = await bind_udp(sip=True)
        self.rtp, self.rtp_inbox, self.rtp_port = await bind_udp()
        self.tasks = [asyncio.create_task(self._signal()), asyncio.create_task(self._media())]
        return self

    async def _signal(self) -> None:
        while True:
            message = parse_message(await self.inbox.queue.get())
            source = self.inbox.last_source
            if not isinstance(message, SipRequest):
                continue
            if message.method == "INVITE":
                offer = parse_sdp(message.body)
                self.offer = offer.payload_types
                answer = response_to(message, 200, to_tag="wide")
                answer.headers.add("Contact", f"<sip:trunk@127.0.0.1:{self.port}>")
                answer.headers.add("Content-Type", "application/sdp")
                answer.body = build_sdp("127.0.0.1", self.rtp_port, [9], event_payload_type=101)
                self.transport.sendto(answer.serialize(), source)
                self.remote = (offer.address, offer.port)
            elif message.method == "ACK":
                self.sending = asyncio.create_task(self._send_tone())
            elif message.method == "BYE":
                self.transport.sendto(response_to(message, 200).serialize(), source)
                self.bye.set()

    async def _send_tone(self) -> None:
        frames = g722_frames(tone(500, 1.0))
        for index, frame in enumerate(frames):
            packet = build_packet(
                frame, payload_type=9, sequence=index, timestamp=160 * index, ssrc=7,
                marker=index == 0,
            )  # fmt: skip
            self.rtp.sendto(packet, self.remote)
            await asyncio.sleep(0.02)

    async def _media(self) -> None:
        while True:
            packet = parse_packet(await self.rtp_inbox.queue.get())
            self.packets.append((packet.payload_type, packet.timestamp, bytes(packet.payload)))

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.transport.close()
        self.rtp.close()


@pytest.mark.settings(sip_codecs="G722,PCMU")
async def test_outbound_call_offers_g722_first_and_speaks_it(
    trunkline: Trunkline, echo_agent: EchoAgent, api: Api
) -> None:
    async with WidebandTrunk() as trunk:
        await register_byo_number(api, trunk.port, "unused", echo_agent.url)
        placed = await place(api)
        await wait_status(trunkline, placed["id"], {"answered"})
        assert trunk.offer == [9, 0, 101]  # TRUNKLINE_SIP_CODECS order, then telephone-event
        for _ in range(200):
            if len(trunk.packets) >= 75:
                break
            await asyncio.sleep(0.02)
        status, body = await api.post(f"/calls/{placed['id']}/hangup", {})
        assert status == 200, body
        await asyncio.wait_for(trunk.bye.wait(), 10)
    assert {pt for pt, _, _ in trunk.packets} == {9}
    assert {len(payload) for _, _, payload in trunk.packets} == {160}
    decoder = G722Decoder()
    back = np.frombuffer(b"".join(decoder.decode(p) for _, _, p in trunk.packets), dtype="<i2")
    # The echo agent (μ-law at 8 kHz) sent the callee's tone back, as G.722 again.
    assert np.sqrt(np.mean(back.astype(np.float64) ** 2)) > 1000
    assert abs(dominant_hz(back, WIDEBAND) - 500) < 20
