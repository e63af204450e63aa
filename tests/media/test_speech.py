"""A call's speech parts: transcription, barge-in and speech output, with fake engines and time."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from tests.fakes.clock import FakeClock, FakeLoop
from tests.media.events import NotedEvents
from tests.media.fakes import FakeLink, FakeSynthesizer, ManualPool
from tests.media.voice import voiced_ulaw_frames
from trunkline.agent.link import AgentLink
from trunkline.media.clock import MediaClock
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.plan import MediaPlan
from trunkline.media.playout import Playout
from trunkline.media.session import MediaSession
from trunkline.media.speech_output import SpeechOutput
from trunkline.media.speech_work import SpeechWork
from trunkline.speech.engines import SpeechEngines
from trunkline.speech.transcriber import TranscriptionRequest

SILENCE = b"\xff" * 160


class FakeTranscriber:
    name = "fake"

    def __init__(self) -> None:
        self.heard: list[int] = []

    def transcribe(self, pcm8k: bytes) -> str:
        self.heard.append(len(pcm8k))
        return "hello there"

    def load(self) -> None:
        return None


class FakeBatchTranscriber(FakeTranscriber):
    """Answers each pass with the words said so far: one word per 200 ms of audio."""

    WORDS = [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
    ]

    def __init__(self) -> None:
        super().__init__()
        self.prefixes: list[str] = []

    def transcribe_batch(self, requests: list[TranscriptionRequest]) -> list[str]:
        self.prefixes += [r.prefix for r in requests]
        return [" ".join(self.WORDS[: len(r.pcm8k) // 3200]) for r in requests]


def engines(*, transcriber: bool = True, synthesizer: bool = True, batching: bool = False) -> Any:
    fake = FakeBatchTranscriber() if batching else FakeTranscriber()
    return SimpleNamespace(
        transcriber=fake if transcriber else None,
        synthesizer=FakeSynthesizer() if synthesizer else None,
        transcription=ManualPool(),
        synthesis=ManualPool(),
        partial_every_ms=400,
        neural_vad=None,
    )


def session_with_agent(
    speech: Any, headers: dict[str, str], clock: FakeClock | None = None
) -> tuple[MediaSession, FakeLink, NotedEvents]:
    factory = MediaSessionFactory(
        MediaClock(FakeLoop()),
        speech=cast(SpeechEngines, speech),
        speech_clock=clock or FakeClock(),
    )
    events = NotedEvents()
    session = factory.create(MediaPlan("call", caller_codec="PCMU"), events)
    link = FakeLink(headers)
    session.attach_agent(cast(AgentLink, link))
    return session, link, events


# -- speech modes ------------------------------------------------------------------------
def test_speech_modes_default_on_and_need_their_engine() -> None:
    session, _, _ = session_with_agent(engines(), {})
    assert session.stt_mode and session.tts_mode
    session, _, _ = session_with_agent(engines(transcriber=False, synthesizer=False), {})
    assert not session.stt_mode and not session.tts_mode
    off = {"x-use-inkbox-speech-to-text": "false", "x-use-inkbox-text-to-speech": "0"}
    session, _, _ = session_with_agent(engines(), off)
    assert not session.stt_mode and not session.tts_mode


# -- transcription and barge-in ----------------------------------------------------------
async def test_caller_speech_becomes_a_final_transcript_frame_and_a_stored_segment() -> None:
    speech = engines()
    session, link, events = session_with_agent(speech, {"x-use-inkbox-text-to-speech": "no"})
    for frame in voiced_ulaw_frames(1.0) + [SILENCE] * 30:
        session.caller_audio(frame)
    assert link.named("media") == []  # in speech-to-text mode the agent gets text, not audio
    speech.transcription.run_all()
    finals = [frame for frame in link.named("transcript") if frame["is_final"]]
    assert [(frame["text"], frame["turn_id"]) for frame in finals] == [("hello there", 1)]
    drained = session.stop("done")
    assert drained is not None
    await asyncio.wait_for(drained, 1)
    assert [(party, text) for party, text, _ in events.segments] == [("remote", "hello there")]


async def test_the_caller_talking_over_agent_audio_barges_in_once_per_turn() -> None:
    speech = engines()
    session, link, _ = session_with_agent(speech, {"x-use-inkbox-text-to-speech": "no"})
    session.play_phone_audio(b"\x22" * 160 * 50)  # a second of agent audio queued
    for frame in voiced_ulaw_frames(1.0):
        session.caller_audio(frame)
    barge = link.named("barge_in")
    assert len(barge) == 1 and barge[0]["turn_id"] == 1 and not barge[0]["tts_interrupted"]
    assert session.playout.backlog_frames == 0
    session.play_phone_audio(b"\x22" * 160 * 5)  # the same turn goes on: no second barge-in
    for frame in voiced_ulaw_frames(0.5):
        session.caller_audio(frame)
    assert len(link.named("barge_in")) == 1
    drained = session.stop("done")
    speech.transcription.run_all()  # the utterance flushed at hang-up
    await asyncio.wait_for(cast(asyncio.Future[None], drained), 1)


async def test_an_utterance_still_open_at_hang_up_is_transcribed_and_stored() -> None:
    speech = engines()
    session, _, events = session_with_agent(speech, {"x-use-inkbox-speech-to-text": "no"})
    for frame in voiced_ulaw_frames(1.0):
        session.caller_audio(frame)
    drained = session.stop("done")
    assert drained is not None and not drained.done()  # the flushed utterance is being transcribed
    speech.transcription.run_all()
    await asyncio.wait_for(drained, 1)
    assert ("remote", "hello there") in [(party, text) for party, text, _ in events.segments]


async def test_partials_come_at_a_steady_cadence_and_the_final_reuses_their_agreed_words() -> None:
    speech = engines(batching=True)
    session, link, _ = session_with_agent(speech, {"x-use-inkbox-text-to-speech": "no"})
    parts = session._call_speech  # the session's speech parts, as the factory built them
    transcription = parts.transcription if parts is not None else None
    assert transcription is not None
    pool = speech.transcription
    passes_at: list[int] = []
    for index, frame in enumerate(voiced_ulaw_frames(2.0)):
        session.caller_audio(frame)
        if pool.jobs:
            passes_at.append(index)
            pool.run_all()
    # 400 ms of speech between passes (20 frames), steadily, while the caller speaks.
    gaps = {b - a for a, b in zip(passes_at, passes_at[1:], strict=False)}
    assert gaps == {20} and len(passes_at) >= 4, passes_at
    partials = [f for f in link.named("transcript") if not f["is_final"]]
    assert len(partials) == len(passes_at)
    assert transcription.latest_partial() == partials[-1]["text"]
    for frame in [SILENCE] * 30:
        session.caller_audio(frame)
    assert transcription.latest_partial() == ""  # the utterance is over
    pool.run_all()
    fake = speech.transcriber
    assert fake.prefixes[-1] != "" and partials[-1]["text"].startswith(fake.prefixes[-1])
    finals = [f for f in link.named("transcript") if f["is_final"]]
    assert len(finals) == 1 and finals[0]["turn_id"] == partials[-1]["turn_id"]
    drained = session.stop("done")
    pool.run_all()
    await asyncio.wait_for(cast(asyncio.Future[None], drained), 1)


async def test_the_batched_final_is_decoded_during_the_hang_over_with_the_agreed_prefix() -> None:
    speech = engines(batching=True)
    session, link, _ = session_with_agent(speech, {"x-use-inkbox-text-to-speech": "no"})
    pool, fake = speech.transcription, speech.transcriber
    for frame in voiced_ulaw_frames(1.0):
        session.caller_audio(frame)
        pool.run_all()
    passes = len(fake.prefixes)
    for frame in [SILENCE] * 8:  # 160 ms of silence: the utterance so far is decoded ahead
        session.caller_audio(frame)
    assert len(pool.jobs) == 1
    pool.run_all()
    assert link.named("transcript")[-1]["is_final"] is False  # the hang-over is not over yet
    assert fake.prefixes[-1] != ""  # with the words the partial passes agreed on
    for frame in [SILENCE] * 22:
        session.caller_audio(frame)
    finals = [f for f in link.named("transcript") if f["is_final"]]
    assert len(finals) == 1 and finals[0]["text"] == "one two three four five"
    assert pool.jobs == [] and len(fake.prefixes) == passes + 1  # no second decoding
    drained = session.stop("done")
    await asyncio.wait_for(cast(asyncio.Future[None], drained), 1)


async def test_a_decoding_ahead_is_dropped_when_the_caller_speaks_again() -> None:
    speech = engines(batching=True)
    session, link, _ = session_with_agent(speech, {"x-use-inkbox-text-to-speech": "no"})
    pool = speech.transcription
    for frame in voiced_ulaw_frames(1.0) + [SILENCE] * 8:
        session.caller_audio(frame)
        pool.run_all()  # the decoding ahead ran on the first second of speech
    for frame in voiced_ulaw_frames(1.0) + [SILENCE] * 30:
        session.caller_audio(frame)
    pool.run_all()
    finals = [f for f in link.named("transcript") if f["is_final"]]
    # One final, for the whole utterance (2 s + the pause: ten words), not the first part's.
    assert len(finals) == 1 and len(finals[0]["text"].split()) >= 10, finals
    drained = session.stop("done")
    await asyncio.wait_for(cast(asyncio.Future[None], drained), 1)


def test_one_partial_pass_at_a_time_per_call() -> None:
    speech = engines(batching=True)
    session, _, _ = session_with_agent(speech, {"x-use-inkbox-text-to-speech": "no"})
    for frame in voiced_ulaw_frames(3.0):
        session.caller_audio(frame)
    assert len(speech.transcription.jobs) == 1  # the next beats wait for the pass in flight


# -- speech output ---------------------------------------------------------------------------
def output(
    synthesizer: FakeSynthesizer | None = None, *, clock: FakeClock | None = None
) -> tuple[SpeechOutput, ManualPool, Playout, list[str], list[tuple[str, str, int]]]:
    stored: list[tuple[str, str, int]] = []
    marks: list[str] = []

    async def store(party: Any, text: str, ts_ms: int) -> None:
        stored.append((party, text, ts_ms))

    pool = ManualPool()
    playout = Playout(marks.append)
    work = SpeechWork("call", store, clock=clock or FakeClock())
    speech = SpeechOutput(
        synthesizer or FakeSynthesizer(), pool, work, playout=playout, play=playout.push
    )
    return speech, pool, playout, marks, stored


def test_agent_text_is_refused_unless_text_to_speech_is_on() -> None:
    speech, pool, _, _, _ = output()
    assert not speech.agent_text("Hello.", True)
    assert pool.jobs == []


async def test_sentences_are_spoken_one_at_a_time_while_the_agent_streams() -> None:
    clock = FakeClock(0.0)
    synthesizer = FakeSynthesizer()
    speech, pool, playout, _, stored = output(synthesizer, clock=clock)
    speech.tts_mode = True
    clock.advance(1.5)  # the response starts 1.5 s into the call
    assert speech.agent_text("Hello there. How are", False)
    assert len(pool.jobs) == 1  # the first sentence, before the agent is done
    speech.agent_text(" you today? Fine", False)
    assert len(pool.jobs) == 1  # one piece at a time per call
    pool.run_next()
    assert synthesizer.spoken == ["Hello there."] and playout.backlog_frames == 2
    assert len(pool.jobs) == 1  # the next sentence went to the workers
    pool.run_next()
    assert synthesizer.spoken == ["Hello there.", "How are you today?"]
    speech.agent_text("", True)
    pool.run_all()
    assert synthesizer.spoken[-1] == "Fine" and playout.backlog_frames == 6
    await asyncio.sleep(0)  # the segment store runs as a task
    assert stored == [("local", "Hello there. How are you today? Fine", 1500)]
    assert len(speech.first_audio_seconds) == 1


async def test_a_mark_waits_behind_pending_speech_and_clear_echoes_it_at_once() -> None:
    speech, pool, playout, marks, _ = output()
    speech.tts_mode = True
    speech.agent_text("One. Two.", True)
    assert speech.agent_mark("after-two")  # queued behind the speech
    assert marks == []
    speech.clear()
    assert marks == ["after-two"] and not speech.speaking
    pool.run_all()  # the dropped piece's audio is not played
    assert playout.backlog_frames == 0


async def test_a_greeting_then_a_tone_play_in_order() -> None:
    speech, pool, playout, _, _ = output()
    speech.say("Leave a message.", then=b"\x7f" * 160)
    assert speech.speaking and playout.backlog_frames == 0
    pool.run_all()
    frames = [playout.tick() for _ in range(3)]
    assert frames[-1] == b"\x7f" * 160 and not speech.speaking


def test_speech_beyond_the_queue_bound_is_counted_not_queued() -> None:
    speech, pool, _, _, _ = output()
    speech.tts_mode = True
    speech.agent_text("Start. " + "More. " * 200, False)
    assert speech.speech_lost > 0 and len(pool.jobs) == 1


# -- the speech time base ---------------------------------------------------------------------
async def test_speech_work_drains_once_every_store_is_done() -> None:
    clock = FakeClock(10.0)
    release = asyncio.Event()

    async def slow_store(party: Any, text: str, ts_ms: int) -> None:
        await release.wait()

    work = SpeechWork("call", slow_store, clock=clock)
    clock.advance(0.25)
    assert work.now_ms() == 250
    work.store("system", "hi", work.now_ms())
    drained = work.drained()
    await asyncio.sleep(0)
    assert not drained.done()
    release.set()
    await asyncio.wait_for(drained, 1)
