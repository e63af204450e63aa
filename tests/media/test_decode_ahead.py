"""A caller's pause starts the decoding of their turn: its text is the partial, then the final."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from tests.media.test_speech import SILENCE, engines, session_with_agent
from tests.media.voice import voiced_ulaw_frames

TEXT_TO_SPEECH_OFF = {"x-use-inkbox-text-to-speech": "no"}


async def hang_up(session: Any, speech: Any) -> None:
    drained = session.stop("done")
    speech.transcription.run_all()
    await asyncio.wait_for(cast(asyncio.Future[None], drained), 1)


async def test_a_pause_decodes_the_turn_and_that_decoding_is_its_final() -> None:
    # 0.6 s of speech: shorter than the partials' cadence (1 s here), so only the pause decodes
    speech = engines()
    speech.partial_every_ms = 1000
    session, link, _ = session_with_agent(speech, TEXT_TO_SPEECH_OFF)
    for frame in voiced_ulaw_frames(0.6) + [SILENCE] * 8:  # 160 ms into the pause
        session.caller_audio(frame)
    assert len(speech.transcription.jobs) == 1  # decoding began while the hang-over runs
    speech.transcription.run_next()
    sent = [(f["text"], f["is_final"], f["turn_id"]) for f in link.named("transcript")]
    assert sent == [("hello there", False, 1)]  # a partial, for the agent and the hang-over
    for _ in range(25):
        session.caller_audio(SILENCE)
    sent = [(f["text"], f["is_final"], f["turn_id"]) for f in link.named("transcript")]
    assert sent[1:] == [("hello there", True, 1)]
    assert speech.transcription.jobs == [] and len(speech.transcriber.heard) == 1  # decoded once
    await hang_up(session, speech)


async def test_a_turn_that_ends_while_it_is_decoded_takes_that_decoding() -> None:
    speech = engines()
    speech.partial_every_ms = 1000  # no partial pass within the 0.6 s of speech
    session, link, _ = session_with_agent(speech, TEXT_TO_SPEECH_OFF)
    for frame in voiced_ulaw_frames(0.6) + [SILENCE] * 40:  # the turn ends; still decoding
        session.caller_audio(frame)
    assert len(speech.transcription.jobs) == 1 and link.named("transcript") == []
    speech.transcription.run_next()
    assert [f["is_final"] for f in link.named("transcript")] == [True]
    assert len(speech.transcriber.heard) == 1
    await hang_up(session, speech)


async def test_speech_after_the_pause_makes_the_early_decoding_stale() -> None:
    speech = engines()
    session, link, _ = session_with_agent(speech, TEXT_TO_SPEECH_OFF)
    voiced = voiced_ulaw_frames(0.6)
    for frame in voiced + [SILENCE] * 9 + voiced + [SILENCE] * 40:
        session.caller_audio(frame)
    speech.transcription.run_all()  # the early decoding, then the whole turn's
    sent = link.named("transcript")
    assert [(f["is_final"], f["turn_id"]) for f in sent] == [(False, 1), (True, 1)]
    heard = speech.transcriber.heard
    assert len(heard) >= 2 and heard[-1] > heard[0]  # the final covers both stretches of speech
    await hang_up(session, speech)


async def test_a_pause_decodes_the_turn_once_the_partial_pass_before_it_is_done() -> None:
    # the worker is still busy with a partial pass when the pause reaches 160 ms
    speech = engines()
    speech.partial_every_ms = 400
    session, link, _ = session_with_agent(speech, TEXT_TO_SPEECH_OFF)
    for frame in voiced_ulaw_frames(0.6) + [SILENCE] * 8:
        session.caller_audio(frame)
    assert len(speech.transcription.jobs) == 1  # the partial pass, not yet run
    speech.transcription.run_next()
    assert speech.transcription.jobs == []
    session.caller_audio(SILENCE)  # still in the pause, the worker idle: the turn is decoded
    assert len(speech.transcription.jobs) == 1
    speech.transcription.run_next()
    for _ in range(40):
        session.caller_audio(SILENCE)
    assert speech.transcription.jobs == []  # neither decoded again in the pause nor at its end
    sent = [(f["text"], f["is_final"]) for f in link.named("transcript")]
    assert sent[-1] == ("hello there", True)
    heard = speech.transcriber.heard
    assert len(heard) == 2 and heard[1] > heard[0]  # the partial, then the whole turn once
    await hang_up(session, speech)
