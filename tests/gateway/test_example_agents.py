"""The talking example agent on a real call: trunkline listens and speaks for it."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import pytest

from tests.example_agents import example_agent
from tests.gateway.conftest import Trunkline
from tests.speech.voice import spoken, transcribe_ulaw
from trunkline.codecs.g711 import pcm16_to_ulaw
from trunkline.testcall.audio import ULAW_SILENCE, load_wav_frames, write_wav
from trunkline.testcall.caller import CallOptions, TestCall
from trunkline.testcall.media import SILENT_CODES, MediaCounts

QUESTION = "What time is it?"
GREETING_SECONDS = 6.0  # the caller waits for the greeting before asking (no barge-in)


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    return {}  # transcription on: the talking agent answers what it is told


def question_wav(path: Path) -> None:
    """Silence while the greeting plays, then the question, as a caller's phone would send it."""
    lead = ULAW_SILENCE * int(GREETING_SECONDS / 0.02)
    write_wav(path, lead + spoken(QUESTION) + ULAW_SILENCE * 50)


async def until_speech_ends(counts: MediaCounts, wanted: int, seconds: float) -> None:
    """Until ``wanted`` frames with sound have come back and no more have for 1.5 s, or
    ``seconds``: the agent's last line is logged when it is sent, before it is spoken."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    heard, quiet_since = counts.audio_with_sound, loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.1)
        if counts.audio_with_sound != heard:
            heard, quiet_since = counts.audio_with_sound, loop.time()
        elif heard > wanted and loop.time() - quiet_since >= 1.5:
            return


def recording_ulaw(path: Path) -> bytes:
    with wave.open(str(path)) as recording:
        return pcm16_to_ulaw(recording.readframes(recording.getnframes()))


async def local_segments(trunkline: Trunkline, organization_id: str, wanted: int) -> list[str]:
    """What the agent said on the call, as stored: once ``wanted`` segments are in (or 10 s)."""
    repository = trunkline.services.repository
    said: list[str] = []
    for _ in range(100):
        calls = await repository.list_calls(organization_id)
        segments = await repository.list_transcripts(calls[0].id)
        said = [s.text for s in segments if s.party == "local"]
        if len(said) >= wanted:
            break
        await asyncio.sleep(0.1)
    return said


async def test_the_talking_agent_greets_answers_speech_and_keys(
    trunkline: Trunkline, tmp_path: Path
) -> None:
    played, recorded = tmp_path / "question.wav", tmp_path / "heard.wav"
    await asyncio.to_thread(question_wav, played)
    async with example_agent("talking_agent") as agent:
        number = await trunkline.number("auto_accept", agent.url)
        options = CallOptions(
            number.number,
            "127.0.0.1",
            trunkline.sip_port,
            play=played,
            record=recorded,
            dtmf="5",
            seconds=90,
        )
        hang_up = asyncio.Event()
        test_call = TestCall(options, await asyncio.to_thread(load_wav_frames, played), hang_up)
        call = asyncio.create_task(test_call.run())
        try:  # as long as transcription and speech take on a busy machine, then hang up
            heard = await agent.wait_for_line("caller said:", 60)
            await agent.wait_for_line("agent says: It is ", 10)
            await agent.wait_for_line("agent says: You pressed 5.", 10)
            await until_speech_ends(test_call.media.counts, 50, 30)
        finally:
            hang_up.set()
            summary = await asyncio.wait_for(call, 30)
        await asyncio.to_thread(write_wav, recorded, bytes(test_call.media.recording))
    assert summary.answered and summary.hung_up_by == "caller"
    assert "time" in heard.lower()
    assert summary.round_trip_ms is None  # this agent talks; it does not echo
    assert summary.counts.audio_with_sound > 50  # at least a second of speech came back
    said = await local_segments(trunkline, number.organization_id, 3)
    assert said[0].startswith("Hello! This is the trunkline example agent.")
    assert any(text.startswith("It is ") for text in said), said
    assert "You pressed 5." in said
    # What the caller heard first is the greeting, spoken (from its first sound: on a busy
    # machine the synthesis of the first words may take a while).
    heard_audio = await asyncio.to_thread(recording_ulaw, recorded)
    start = len(heard_audio) - len(heard_audio.lstrip(SILENT_CODES))
    greeting = heard_audio[start : start + 8000 * 5]
    assert "hello" in (await asyncio.to_thread(transcribe_ulaw, greeting)).lower()
