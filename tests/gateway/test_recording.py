"""Call recordings: two channels at 8 kHz, served by a presigned URL, repaired after a crash."""

from __future__ import annotations

import asyncio
import math
import shutil
from pathlib import Path

import aiohttp
import numpy as np
import soundfile
from yarl import URL

from tests.gateway.conftest import NUMBER, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from trunkline.codecs.g711 import pcm16_to_ulaw
from trunkline.crypto import hash_token, new_token
from trunkline.media.recording import PARTIAL_SUFFIX, repair_partials
from trunkline.storage.models import Call


def tone_frames(seconds: float, hz: float = 440.0) -> list[bytes]:
    t = np.arange(int(8000 * seconds)) / 8000
    codes = pcm16_to_ulaw((6000 * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes())
    return [codes[i : i + 160] for i in range(0, len(codes), 160)]


async def recorded_call(trunkline: Trunkline, call_id: str) -> Call:
    for _ in range(200):
        call = await trunkline.services.repository.get_call(call_id)
        if call is not None and call.recording_key:
            return call
        await asyncio.sleep(0.025)
    raise AssertionError("no recording was published")


def level(channel: np.ndarray) -> float:
    return float(np.sqrt(np.mean(channel.astype(np.float64) ** 2)))


async def test_a_call_is_recorded_in_two_channels_and_served(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    number = await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        await carrier.send_audio(tone_frames(1.0))
        await carrier.received_audio(8000)
        await asyncio.sleep(0.3)  # a moment of silence both ways
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    call = await recorded_call(trunkline, call.id)
    assert call.recording_key == f"recordings/{call.id}.wav"
    repository = trunkline.services.repository
    token = new_token()
    await repository.create_token(number.organization_id, None, hash_token(token))
    base = f"http://127.0.0.1:{trunkline.http_port}"
    async with aiohttp.ClientSession(headers={"X-API-Key": token}) as http:
        async with http.get(f"{base}/api/v1/phone/calls/{call.id}") as response:
            url = (await response.json())["recording_url"]
        signed = URL(url)  # the test server's port differs from the configured public URL
        async with http.get(URL(base).with_path(signed.path).with_query(signed.query)) as response:
            assert response.status == 200
            wav = await response.read()
    path = Path(trunkline.services.settings.data_dir) / "recording.wav"
    path.write_bytes(wav)
    audio, rate = soundfile.read(path, dtype="int16")
    assert rate == 8000 and audio.shape[1] == 2
    assert call.started_at is not None and call.ended_at is not None
    answered_for = (call.ended_at - call.started_at).total_seconds()
    assert abs(audio.shape[0] / 8000 - answered_for) < 0.04  # ± 40 ms
    caller, agent = audio[:, 0], audio[:, 1]
    assert level(caller[: 8000 // 2]) > 2000  # the tone, left
    assert level(agent[400 : 8000 // 2]) > 2000  # its echo, right
    assert level(caller[-800:]) < 50 and level(agent[-800:]) < 50  # the silence at the end


async def test_numbers_with_recording_off_are_not_recorded(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    number = await trunkline.number("auto_accept", echo_agent.url, recording_enabled=False)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        await carrier.send_audio(tone_frames(0.2))
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    await asyncio.sleep(0.3)
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    assert call.recording_key is None
    assert not list((Path(trunkline.services.settings.data_dir) / "recordings").glob("*.wav*"))


def test_a_recording_cut_off_by_a_crash_is_repaired(tmp_path: Path) -> None:
    frames = np.zeros((8000 * 2, 2), dtype="<i2")
    frames[:, 0] = 1000
    live = tmp_path / "live.wav"
    handle = soundfile.SoundFile(live, "w", samplerate=8000, channels=2, subtype="PCM_16",
                                 format="WAV")  # fmt: skip
    handle.write(frames)
    handle.flush()
    crashed = tmp_path / f"call-1{PARTIAL_SUFFIX}"
    shutil.copyfile(live, crashed)  # the file as a crash leaves it: header sizes unwritten
    with crashed.open("ab") as tail:
        tail.write(b"\x01\x02\x03")  # and half a frame
    handle.close()
    assert repair_partials(tmp_path) == 1
    audio, rate = soundfile.read(tmp_path / "call-1.wav", dtype="int16")
    assert rate == 8000 and audio.shape == (16000, 2)
    assert (audio[:, 0] == 1000).all()
