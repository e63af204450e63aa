"""A real call whose caller stream is re-ordered, duplicated, gapped and late, over loopback UDP.

The carrier sends numbered packets on a 20 ms schedule (each payload is random,
so every frame the agent hears says which packet it came from) with faults
mixed in: two packets swapped, duplicates, two packets never sent, one sent far
too late, an RFC 4733 digit taking three sequence numbers, and the 16-bit
sequence and 32-bit timestamp wrapping mid-stream. A real WebSocket agent
records every frame. It must hear the packets in order, each once, a
concealment frame (the last one faded) standing in for every missing slot,
and frames still every 20 ms after the caller stops, until the hang-up.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.gateway.conftest import NUMBER, Trunkline, audio_mode
from tests.gateway.sip_peer import CarrierCall
from trunkline.codecs.concealment import HALVE
from trunkline.codecs.dtmf import TelephoneEvent, encode_event
from trunkline.gateway.rtp.leg import RtpLeg
from trunkline.gateway.rtp.packet import build_packet

PACKETS = 100
FIRST_SEQ = 65_500  # wraps to 0 at packet 36
FIRST_TS = 0xFFFFFFFF - 160 * 60 + 1  # wraps to 0 at packet 60
NEVER_SENT = {40, 41}
SENT_LATE = 50  # 600 ms after its time: far beyond the buffer's depth
DIGIT_SLOTS = (70, 71, 72)  # sequence numbers a DTMF digit takes from the audio
SWAPPED = (10, 11)
DUPLICATED = (20, 5)  # 20 again at once; 5 again at slot 30, long after it played


@dataclass
class RecordingAgent:
    """Keeps every media payload and digit it is sent, in order (Inkbox protocol, μ-law)."""

    url: str = ""
    frames: list[bytes] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, connection: ServerConnection) -> None:
        try:
            async for message in connection:
                frame = json.loads(message)
                if frame.get("event") == "media":
                    self.frames.append(base64.b64decode(frame["media"]["payload"]))
                elif frame.get("event") == "dtmf":
                    self.digits.append(frame["dtmf"]["digit"])
        finally:
            self.closed.set()


@pytest.fixture
async def recording_agent() -> AsyncIterator[RecordingAgent]:
    agent = RecordingAgent()
    async with serve(agent.handle, "127.0.0.1", 0, process_response=audio_mode) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        yield agent


def schedule() -> dict[int, list[int]]:
    """Slot → packet numbers sent in it (negative: the digit's event packets)."""
    slots: dict[int, list[int]] = {n: [n] for n in range(PACKETS)}
    for number in NEVER_SENT:
        slots[number] = []
    slots[SENT_LATE] = []
    slots[SENT_LATE + 30] = [SENT_LATE + 30, SENT_LATE]
    slots[SWAPPED[0]], slots[SWAPPED[1]] = [], [SWAPPED[1], SWAPPED[0]]
    slots[DUPLICATED[0]] = [DUPLICATED[0], DUPLICATED[0]]
    slots[30] = [30, DUPLICATED[1]]
    for slot in DIGIT_SLOTS:
        slots[slot] = [-slot]
    return slots


def datagram(number: int, payloads: list[bytes], ssrc: int) -> bytes:
    if number < 0:  # an event packet of the digit: same SSRC, the audio's sequence numbers
        slot = -number
        event = TelephoneEvent("5", end=slot == DIGIT_SLOTS[-1], volume=10, duration=160 * 3)
        return build_packet(
            encode_event(event),
            payload_type=101,
            sequence=(FIRST_SEQ + slot) & 0xFFFF,
            timestamp=(FIRST_TS + 160 * DIGIT_SLOTS[0]) & 0xFFFFFFFF,
            ssrc=ssrc,
        )
    return build_packet(
        payloads[number],
        payload_type=0,
        sequence=(FIRST_SEQ + number) & 0xFFFF,
        timestamp=(FIRST_TS + 160 * number) & 0xFFFFFFFF,
        ssrc=ssrc,
        marker=number == 0,
    )


@pytest.mark.settings(jitter_min_ms=60, jitter_max_ms=200)
async def test_a_faulty_caller_stream_reaches_the_agent_in_order_at_a_steady_cadence(
    trunkline: Trunkline, recording_agent: RecordingAgent
) -> None:
    await trunkline.number("auto_accept", recording_agent.url)
    payloads = [os.urandom(160).replace(b"\xff", b"\xfe") for _ in range(PACKETS)]
    numbers = {payload: number for number, payload in enumerate(payloads)}
    carrier = await CarrierCall.open(trunkline.sip_port)
    loop = asyncio.get_running_loop()
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        assert carrier.remote_media is not None
        await asyncio.sleep(0.3)
        assert recording_agent.frames == []  # nothing is made up before the caller's first packet
        start = loop.time()
        for slot, sent in sorted(schedule().items()):
            await asyncio.sleep(max(0.0, start + slot * 0.02 - loop.time()))
            for number in sent:
                carrier.send_raw_rtp(datagram(number, payloads, ssrc=0x5EED))
        await asyncio.sleep(0.3)  # the caller has stopped: the agent keeps hearing frames
        heard_after_stop = len(recording_agent.frames)
        await asyncio.sleep(0.5)
        heard_later = len(recording_agent.frames)
        (live,) = trunkline.gateway.calls.values()
        assert live.bridge is not None and isinstance(live.bridge.caller, RtpLeg)
        leg = live.bridge.caller
        assert leg.jitter is not None
        assert (await carrier.bye(NUMBER)).status == 200
        await asyncio.wait_for(recording_agent.closed.wait(), 5)
    finally:
        carrier.close()
    counters, concealer = leg.jitter.counters, leg.concealer

    frames = recording_agent.frames
    assert all(len(frame) == 160 for frame in frames)
    assert numbers.get(frames[0]) == 0  # the cadence starts with the first packet
    heard = [numbers.get(frame) for frame in frames]  # None: a concealment frame
    real = [number for number in heard if number is not None]
    assert real == sorted(set(real))  # in order, each once: duplicates dropped
    missing = NEVER_SENT | {SENT_LATE} | set(DIGIT_SLOTS)
    assert set(real) == set(range(PACKETS)) - missing  # the swapped pair was put back in order
    # Every slot without audio was filled: between two packets heard, at least as many frames
    # as packets missing between them (more if the buffer ran dry under load and waited).
    positions = [index for index, number in enumerate(heard) if number is not None]
    for before, after in zip(positions, positions[1:], strict=False):
        gap = heard[after] - heard[before] - 1  # type: ignore[operator]
        assert after - before - 1 >= gap
    # Concealment is the last frame faded by 6 dB, then silence.
    first_gap = heard.index(39) + 1
    assert heard[first_gap] is None
    assert frames[first_gap] == payloads[39].translate(HALVE["pcmu"])
    assert frames[-1] == b"\xff" * 160  # long after the caller stopped: silence
    # After the caller stopped, the frames kept coming (about 25 in 0.5 s on an idle machine).
    assert heard_later - heard_after_stop >= 10
    # What the buffer counted.
    assert counters.duplicate == 2
    assert counters.late >= 1  # packet 50 (and any other that load delayed that much)
    assert counters.lost >= len(NEVER_SENT) + 1  # never sent, and given up on before 50 came
    assert concealer.repeated >= 3
    # Each frame the agent got was a packet or a concealment frame, and each was counted.
    concealed = concealer.repeated + concealer.silenced + concealer.idle
    assert len(frames) == concealed + len(real)
    assert recording_agent.digits == ["5"]
