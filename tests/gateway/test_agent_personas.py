"""Per-number agent options end to end: the Twilio persona and PCM16 formats."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from tests.gateway.conftest import NUMBER, PASS_THROUGH, EchoAgent, MarkingAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from trunkline.codecs.g711 import pcm16_to_ulaw, ulaw_to_pcm16


def tone_ulaw(frames: int, hz: float = 1000.0, amplitude: float = 8000.0) -> list[bytes]:
    t = np.arange(frames * 160) / 8000.0
    pcm = (amplitude * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()
    codes = pcm16_to_ulaw(pcm)
    return [codes[i : i + 160] for i in range(0, len(codes), 160)]


def best_snr_db(sent: bytes, received: bytes, max_lag: int = 800) -> float:
    """SNR of ``received`` against ``sent`` (both μ-law) at the best alignment."""
    a = np.frombuffer(ulaw_to_pcm16(sent), dtype="<i2").astype(np.float64)
    b = np.frombuffer(ulaw_to_pcm16(received), dtype="<i2").astype(np.float64)
    best = -math.inf
    for lag in range(max_lag):
        n = min(a.size, b.size - lag) - 480  # skip the ends: filter start-up and the held tail
        if n < 2000:
            break
        x, y = a[320 : 320 + n], b[lag + 320 : lag + 320 + n]
        noise = float(np.sum((x - y) ** 2)) or 1e-9
        best = max(best, 10 * math.log10(float(np.sum(x**2)) / noise))
    return best


@PASS_THROUGH
async def test_twilio_persona_round_trips_mulaw_with_twilio_frames(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url, agent_protocol="twilio")
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        frames = [bytes([0x10 + i]) * 160 for i in range(20)]
        await carrier.send_audio(frames)
        assert await carrier.received_audio(3200) == b"".join(frames)
        assert (await carrier.bye(NUMBER)).status == 200
        (agent,) = echo_agent.calls
        await asyncio.wait_for(agent.closed.wait(), 5)
    finally:
        carrier.close()
    connected, start = agent.events[0], agent.events[1]
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    details = start["start"]
    assert details["streamSid"].startswith("MZ") and len(details["streamSid"]) == 34
    assert details["callSid"].startswith("CA") and details["accountSid"].startswith("AC")
    assert details["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    assert details["customParameters"]["to"] == NUMBER
    assert details["tracks"] == ["inbound"]
    stop = agent.events[-1]
    assert stop["event"] == "stop" and stop["stop"]["callSid"] == details["callSid"]
    assert int(stop["sequenceNumber"]) == 2 + 20  # start, 20 media frames, stop


@PASS_THROUGH
@pytest.mark.parametrize("agent_audio", ["pcm16_8k", "pcm16_16k", "pcm16_24k"])
async def test_pcm16_agents_hear_and_speak_at_their_rate(
    trunkline: Trunkline, echo_agent: EchoAgent, agent_audio: str
) -> None:
    await trunkline.number("auto_accept", echo_agent.url, agent_audio=agent_audio)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        frames = tone_ulaw(60)
        await carrier.send_audio(frames)
        echoed = await carrier.received_audio(55 * 160, wait_seconds=5)
        assert (await carrier.bye(NUMBER)).status == 200
        (agent,) = echo_agent.calls
        await asyncio.wait_for(agent.closed.wait(), 5)
    finally:
        carrier.close()
    rate = {"pcm16_8k": 8000, "pcm16_16k": 16000, "pcm16_24k": 24000}[agent_audio]
    assert agent.events[0]["start"]["media_format"] == {
        "encoding": "audio/pcm",
        "sample_rate": rate,
        "channels": 1,
        "sample_format": "s16le",
    }
    # The agent got 16-bit samples at its rate: exactly 60 frames' worth.
    assert agent.media_bytes == 60 * rate // 50 * 2
    assert best_snr_db(b"".join(frames), echoed) >= 30.0


@pytest.mark.parametrize("protocol", ["inkbox", "twilio"])
async def test_marks_echo_in_order_after_their_audio_has_played(
    trunkline: Trunkline, marking_agent: MarkingAgent, protocol: str
) -> None:
    await trunkline.number("auto_accept", marking_agent.url, agent_protocol=protocol)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        played = await carrier.received_audio(2400, wait_seconds=5)
        await asyncio.wait_for(marking_agent.done.wait(), 5)
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    assert played == b"\x20" * 800 + b"\x21" * 800 + b"\x22" * 800
    assert [name for name, _ in marking_agent.marks] == ["m0", "m1", "m2"]
    # Each mark comes back no sooner than its audio could have played (100 ms per burst).
    for index, (_, elapsed) in enumerate(marking_agent.marks):
        assert elapsed >= 0.1 * (index + 1) - 0.03
