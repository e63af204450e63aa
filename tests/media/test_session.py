"""The media session: the taps a plan asks for, the agent chain, and what it reports back."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any, cast

import soundfile

from tests.fakes.clock import FakeLoop
from tests.media.events import NotedEvents
from tests.media.fakes import FakeLink
from trunkline.agent.formats import AGENT_FORMATS
from trunkline.agent.link import AgentLink
from trunkline.media.clock import MediaClock
from trunkline.media.counters import MediaTotals
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.plan import MediaPlan
from trunkline.media.recording import RecordingWriter
from trunkline.media.session import MediaSession, header_flag

CALLER_FRAME = bytes(range(0x40, 0x40 + 160))  # μ-law, not silence


class NotingLeg:
    def __init__(self) -> None:
        self.sent: list[bytes | None] = []
        self.detached = False

    def send_frame(self, frame: bytes | None) -> None:
        self.sent.append(frame)

    def detach(self) -> None:
        self.detached = True

    def rephased(self, earlier_seconds: float) -> None:
        return None

    def rtp_counters(self) -> dict[str, int]:
        return {"packets_in": 3}


def attach(session: MediaSession, link: FakeLink) -> None:
    session.attach_agent(cast(AgentLink, link))


def test_caller_audio_goes_to_the_agent_and_agent_audio_to_the_caller_leg() -> None:
    loop = FakeLoop()
    totals = MediaTotals.empty()
    factory = MediaSessionFactory(MediaClock(loop), totals=totals)
    session = factory.create(MediaPlan("call-1", caller_codec="PCMU"), NotedEvents())
    leg, link = NotingLeg(), FakeLink()
    session.caller = leg
    attach(session, link)
    assert [frame["event"] for frame in link.events()] == ["start"]
    session.start()
    session.caller_audio(CALLER_FRAME)
    media = link.named("media")
    assert len(media) == 1 and base64.b64decode(media[0]["media"]["payload"]) == CALLER_FRAME
    session.agent_text(json.dumps({"event": "media", "media": {"payload": base64.b64encode(
        b"\x22" * 160).decode()}}))  # fmt: skip
    loop.advance(0.02)
    assert b"\x22" * 160 in leg.sent
    session.stop("hangup")
    assert leg.detached and link.closed == (1000, "hangup")
    assert link.named("stop")
    assert totals.counters.frames_to_agent == 1 and totals.counters.frames_to_caller == 1
    assert totals.rtp == {"packets_in": 3}  # the leg's own counters


def test_a_call_is_recorded_only_when_its_plan_says_so(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path)
    factory = MediaSessionFactory(MediaClock(FakeLoop()), recordings=writer)
    assert factory.create(MediaPlan("quiet", caller_codec="PCMU"), NotedEvents()).recorder is None
    recorded = factory.create(MediaPlan("loud", caller_codec="PCMU", record=True), NotedEvents())
    assert recorded.recorder is not None


def test_a_recorded_call_gets_both_parties_and_reports_the_finished_file(tmp_path: Path) -> None:
    loop = FakeLoop()
    writer = RecordingWriter(tmp_path)
    writer.start()
    events = NotedEvents()
    factory = MediaSessionFactory(MediaClock(loop), recordings=writer)
    session = factory.create(MediaPlan("rec-1", caller_codec="PCMA", record=True), events)
    session.caller = NotingLeg()
    session.start()
    for _ in range(50):
        session.caller_audio(b"\x55" * 160)  # A-law: decoded for the recorder tap
        session.play_phone_audio(b"\x11" * 160)
        loop.advance(0.02)
    session.stop("done")
    writer.stop()
    assert [call_id for call_id, _ in events.recordings] == ["rec-1"]
    audio, rate = soundfile.read(str(events.recordings[0][1]), dtype="int16")
    assert rate == 8000 and audio.shape[1] == 2
    assert 45 * 160 <= audio.shape[0] <= 51 * 160
    assert abs(audio[:, 0]).max() > 0 and abs(audio[:, 1]).max() > 0


def test_agent_stop_overflow_and_transcripts_are_reported_through_events() -> None:
    events = NotedEvents()
    session = MediaSessionFactory(MediaClock(FakeLoop())).create(
        MediaPlan("call-2", caller_codec="PCMU"), events
    )
    link = FakeLink()
    attach(session, link)
    session.agent_text('{"event":"transcript","party":"remote","text":"hello","is_final":true}')
    session.agent_text('{"event":"transcript","text":"partial","is_final":false}')
    session.agent_text('{"event":"stop","reason":"bye"}')
    assert link.on_overflow is not None
    link.on_overflow()
    assert events.transcripts == [("remote", "hello")]
    assert events.stopped == ["bye"] and events.overflowed == 1


def test_broken_agent_frames_and_text_without_speech_are_rejected_and_counted() -> None:
    session = MediaSessionFactory(MediaClock(FakeLoop())).create(
        MediaPlan("call-3", caller_codec="PCMU"), NotedEvents()
    )
    attach(session, FakeLink())
    session.agent_text("not json")
    session.agent_text('{"event":"text","delta":"hi"}')  # no speech output on this session
    assert session.counters().agent_frames_rejected == 2


def test_the_twilio_persona_gets_the_plan_custom_parameters_and_pcm_format() -> None:
    plan = MediaPlan(
        "call-4",
        caller_codec="PCMU",
        agent_protocol="twilio",
        agent_format=AGENT_FORMATS["mulaw8k"],
        custom_parameters={"from": "+15550001111"},
    )
    session = MediaSessionFactory(MediaClock(FakeLoop())).create(plan, NotedEvents())
    link = FakeLink()
    attach(session, link)
    start: dict[str, Any] = link.named("start")[0]
    assert start["start"]["customParameters"] == {"from": "+15550001111"}


def test_speech_modes_follow_the_agent_upgrade_headers() -> None:
    assert header_flag(None) and not header_flag(None, default=False)
    assert not header_flag(" Off ") and header_flag("yes", default=False)


async def test_stop_without_speech_returns_nothing_to_wait_for() -> None:
    session = MediaSessionFactory(MediaClock(asyncio.get_running_loop())).create(
        MediaPlan("call-5", caller_codec="PCMU"), NotedEvents()
    )
    session.start()
    assert session.stop("done") is None
    assert set(session.media_times()) == {"started_at", "ended_at"}
