"""Barge-in through a call's media session, with real speech: echo of the agent never interrupts it.

The agent's audio is the piper voice, played by the session's tick to a
caller leg that notes every frame. The caller's side carries that audio back
as a phone line would: delayed by a stretch that is no whole number of frames,
attenuated, with hiss, and μ-law coded both ways. A real caller (espeak-ng,
another voice) may talk over it. The caller's frames go through the session
like RTP's do, to the real segmenter with the Silero VAD and the echo guard.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import numpy as np
import pytest

from tests.conftest import require
from tests.fakes.clock import FakeLoop
from tests.media.events import NotedEvents
from tests.media.fakes import FakeLink, ManualPool
from tests.media.test_speech import FakeTranscriber
from tests.speech.voice import spoken
from trunkline.agent.link import AgentLink
from trunkline.codecs.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from trunkline.media.clock import MediaClock
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.plan import MediaPlan
from trunkline.media.session import MediaSession
from trunkline.media.transcription import Transcription
from trunkline.speech.echo import EchoGuard
from trunkline.speech.engines import SpeechEngines
from trunkline.speech.neural_vad import shared_model
from trunkline.speech.synthesizer import EspeakSynthesizer, espeak_available

AGENT_SAYS = "Thanks for calling Luigi's. What can I get started for you today?"
CALLER_SAYS = "Actually, I need to change my delivery address."
FRAME = 160


class NotingLeg:
    """The caller's leg: notes each frame the session sends."""

    def __init__(self) -> None:
        self.sent: list[bytes | None] = []

    def send_frame(self, frame: bytes | None) -> None:
        self.sent.append(frame)

    def detach(self) -> None:
        return None

    def rephased(self, earlier_seconds: float) -> None:
        return None

    def rtp_counters(self) -> dict[str, int]:
        return {}


class EchoingLine:
    """What the caller's side sends back: the played audio, delayed and attenuated, plus hiss."""

    def __init__(self, *, delay_ms: float, loss_db: float, seed: int = 5) -> None:
        self._delay = int(delay_ms * 8)
        self._gain = 10 ** (-loss_db / 20)
        self._played = np.zeros(0)
        self._rng = np.random.default_rng(seed)

    def frame(self, played: bytes | None, index: int, caller: np.ndarray | None) -> bytes:
        """The caller's ``index``-th frame (μ-law), given what was just played."""
        pcm = np.zeros(FRAME) if played is None else pcm_of(played)
        self._played = np.concatenate((self._played, pcm))
        start = index * FRAME - self._delay
        echo = np.zeros(FRAME)
        for i in range(FRAME):
            if 0 <= start + i < len(self._played):
                echo[i] = self._played[start + i]
        signal = echo * self._gain + self._rng.normal(0, 20, FRAME)
        if caller is not None:
            signal += caller
        return pcm16_to_ulaw(np.clip(signal, -32768, 32767).astype("<i2").tobytes())


def pcm_of(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2").astype(np.float64)


def speech_parts() -> Any:
    return cast(
        SpeechEngines,
        type(
            "Engines",
            (),
            {
                "transcriber": FakeTranscriber(),
                "synthesizer": None,
                "transcription": ManualPool(),
                "synthesis": ManualPool(),
                "neural_vad": shared_model(),
                "partial_every_ms": 400,
            },
        )(),
    )


def call(loop: FakeLoop) -> tuple[MediaSession, FakeLink, NotingLeg, Any, NotedEvents]:
    engines = speech_parts()
    factory = MediaSessionFactory(MediaClock(loop), speech=engines)
    events = NotedEvents()
    session = factory.create(MediaPlan("call", caller_codec="PCMU"), events)
    leg, link = NotingLeg(), FakeLink({"x-use-inkbox-text-to-speech": "no"})
    session.caller = leg
    session.attach_agent(cast(AgentLink, link))
    session.start()
    assert session.stt_mode and not session.tts_mode
    return session, link, leg, engines, events


def talk(
    session: MediaSession,
    loop: FakeLoop,
    leg: NotingLeg,
    line: EchoingLine,
    frames: int,
    caller: np.ndarray | None = None,
    caller_from: int = 0,
    until: Any = None,
) -> int:
    """Run ``frames`` slots: a tick, then the caller's frame; the slot ``until`` held at, or -1."""
    for index in range(frames):
        loop.advance(0.02)
        played = leg.sent[-1] if leg.sent else None
        own = None
        if caller is not None and caller_from <= index:
            part = caller[(index - caller_from) * FRAME : (index - caller_from + 1) * FRAME]
            own = np.pad(part, (0, FRAME - len(part))) if len(part) else None
        session.caller_audio(line.frame(played, index, own))
        if until is not None and until():
            return index
    return -1


async def hang_up(session: MediaSession, engines: Any) -> None:
    drained = session.stop("done")
    engines.transcription.run_all()
    await asyncio.wait_for(cast(asyncio.Future[None], drained), 1)


def transcription_of(session: MediaSession) -> Transcription:
    parts = session._call_speech
    assert parts is not None and parts.transcription is not None
    return parts.transcription


async def test_echo_of_the_agents_own_audio_does_not_barge_in() -> None:
    loop = FakeLoop()
    session, link, leg, engines, events = call(loop)
    agent = spoken(AGENT_SAYS)
    session.play_phone_audio(agent)
    agent_frames = len(agent) // FRAME
    line = EchoingLine(delay_ms=97.5, loss_db=9)
    talk(session, loop, leg, line, agent_frames + 60)
    transcription = transcription_of(session)
    assert transcription._caller.turn_id >= 1  # the echo was loud enough to be heard as voice
    assert link.named("barge_in") == []
    assert session.frames_to_caller >= agent_frames  # the agent was heard to the end
    assert transcription.echo.echo_frames > 20
    assert transcription.echo_utterances_dropped >= 1  # its own words are not a caller turn
    await hang_up(session, engines)  # the agent's own words are transcribed as such
    assert link.named("transcript") == []
    assert {party for party, _, _ in events.segments} == {"local"}


async def test_the_caller_talking_over_the_agent_and_its_echo_barges_in() -> None:
    require(espeak_available(), "espeak-ng is not installed")
    loop = FakeLoop()
    session, link, leg, engines, _ = call(loop)
    agent = spoken(AGENT_SAYS)
    session.play_phone_audio(agent)
    caller = pcm_of(b"".join(EspeakSynthesizer().synthesize(CALLER_SAYS)))
    onset = int(np.nonzero(np.abs(caller) > 300)[0][0]) // FRAME  # the caller's first sound
    line = EchoingLine(delay_ms=143.0, loss_db=9)
    talk_from = 50  # one second into the agent's reply
    barged = talk(
        session, loop, leg, line, 200, caller, talk_from, until=lambda: link.named("barge_in")
    )
    assert barged >= 0, "no barge-in"
    assert barged - (talk_from + onset) <= 20  # within 400 ms of the caller's first sound
    barge = link.named("barge_in")
    assert len(barge) == 1 and barge[0]["turn_id"] >= 1
    assert session.playout.backlog_frames == 0  # the rest of the agent's reply was dropped
    await hang_up(session, engines)


async def test_without_the_echo_guard_the_same_echo_would_interrupt_the_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(EchoGuard, "is_echo", lambda self, pcm: False)
    loop = FakeLoop()
    session, link, leg, engines, _ = call(loop)
    agent = spoken(AGENT_SAYS)
    session.play_phone_audio(agent)
    line = EchoingLine(delay_ms=97.5, loss_db=9)
    talk(session, loop, leg, line, len(agent) // FRAME, until=lambda: link.named("barge_in"))
    assert len(link.named("barge_in")) == 1
    await hang_up(session, engines)
