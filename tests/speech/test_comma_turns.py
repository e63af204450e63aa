"""A call's end of turn reads a final comma as its recognizer means it."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.speech.voice import frames, spoken
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.media.barge_in import BargeIn
from trunkline.media.playout import Playout
from trunkline.media.speech_output import SpeechOutput
from trunkline.media.speech_work import SpeechWork
from trunkline.media.transcription import Transcription
from trunkline.speech.workers import SpeechWorkers


class CommaEngine:
    """A recognizer that hears every utterance as a complete sentence ending in a comma."""

    name = "comma"

    def __init__(self, comma_trails: bool) -> None:
        self.comma_trails = comma_trails

    def load(self) -> None:
        return None

    def transcribe(self, pcm8k: bytes) -> str:
        return "The package arrived damaged and the box was open,"


async def silence_before_final_ms(engine: CommaEngine) -> int:
    """Milliseconds of the caller's silence after their sentence until its final is sent."""
    pool = SpeechWorkers("comma-test", threads=1, max_queued=16)
    speech = SpeechWorkers("comma-test-tts", threads=1, max_queued=4)
    finals: list[str] = []

    async def store(party: Any, text: str, ts_ms: int) -> None:
        return None

    def send(frame: str) -> None:
        if '"is_final":true' in frame:
            finals.append(frame)

    work = SpeechWork("comma-test", store)
    playout = Playout(lambda name: None)
    output = SpeechOutput(None, speech, work, playout=playout, play=lambda audio: None)
    transcription = Transcription(
        engine, pool, work, barge_in=BargeIn(playout, output, send), send_to_agent=send
    )
    transcription.stt_mode = True
    transcription.agent_reports_transcripts()
    try:
        for frame in frames(spoken("The package arrived damaged and the box was open.")):
            transcription.caller_frame(ulaw_to_pcm16(frame))
            await asyncio.sleep(0.002)
        silence = ulaw_to_pcm16(b"\xff" * 160)
        for slot in range(100):  # 2 s of silence, a frame at a time
            transcription.caller_frame(silence)
            await asyncio.sleep(0.002)
            if finals:
                return slot * 20
        raise AssertionError("no final transcript within 2 s of silence")
    finally:
        pool.stop(timeout=5)
        speech.stop()


async def test_a_final_comma_holds_the_turn_only_for_a_recognizer_whose_commas_trail() -> None:
    held = await silence_before_final_ms(CommaEngine(comma_trails=True))
    plain = await silence_before_final_ms(CommaEngine(comma_trails=False))
    # The trailing hang-over is 800 ms, the plain one 450 ms: 350 ms apart, give or take a
    # frame or two of the detector's own timing.
    assert 290 <= held - plain <= 410, (held, plain)
