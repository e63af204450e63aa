"""The media session: the taps a plan asks for, the agent chain, and what it reports back."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any, cast

import pytest
import soundfile

from tests.fakes.clock import FakeLoop
from tests.media.events import NotedEvents
from tests.media.fakes import FakeLink
from trunkline import metrics
from trunkline.agent.formats import AGENT_FORMATS
from trunkline.agent.link import AgentLink
from trunkline.gateway.rtp.jitter import JitterBuffer
from trunkline.media.clock import TICK_SECONDS, MediaClock
from trunkline.media.counters import LATENCY_SAMPLE_EVERY, MediaTotals
from trunkline.media.deadline import DRIFT_FRAMES
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


def on_fake_clock() -> tuple[FakeLoop, MediaSession, NotingLeg, FakeLink]:
    """A μ-law call's session on a clock whose time moves only when the test says,
    with a noting caller leg and an attached agent link (not started)."""
    loop = FakeLoop()
    session = MediaSessionFactory(MediaClock(loop)).create(
        MediaPlan("call-1", caller_codec="PCMU"), NotedEvents()
    )
    leg, link = NotingLeg(), FakeLink()
    session.caller = leg
    attach(session, link)
    return loop, session, leg, link


def test_latency_is_timed_on_one_frame_in_16_and_counts_for_16() -> None:
    loop, session, leg, link = on_fake_clock()
    session.start()
    for _ in range(40):  # frames 1, 17 and 33 are timed
        session.caller_audio(CALLER_FRAME)
    chunk = json.dumps({"event": "media", "media": {"payload": base64.b64encode(
        b"\x22" * 160).decode()}})  # fmt: skip
    for _ in range(20):  # chunks 1 and 17 are timed, each when its frame is played
        session.agent_text(chunk)
        loop.advance(0.02)
    assert session.frames_to_agent == 40 and session.frames_to_caller == 20
    assert sum(session.to_agent.counts) == 3 * LATENCY_SAMPLE_EVERY
    assert sum(session.to_caller.counts) == 2 * LATENCY_SAMPLE_EVERY
    assert session.to_agent.sum_ns % LATENCY_SAMPLE_EVERY == 0
    session.stop("hangup")


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


def agent_audio_frame(audio: bytes, stream_sid: str | None = None) -> str:
    frame: dict[str, Any] = {
        "event": "media",
        "media": {"payload": base64.b64encode(audio).decode()},
    }
    if stream_sid is not None:
        frame["streamSid"] = stream_sid
    return json.dumps(frame)


def test_a_redialled_twilio_agent_gets_a_fresh_stream_and_nothing_of_the_old_one() -> None:
    loop = FakeLoop()
    totals = MediaTotals.empty()
    call_id = "0b9e0c52-5a55-4c1e-9d7a-1f0f6d1c2b3a"
    plan = MediaPlan(call_id, caller_codec="PCMU", organization_id="org-1", agent_protocol="twilio")
    session = MediaSessionFactory(MediaClock(loop), totals=totals).create(plan, NotedEvents())
    leg, first = NotingLeg(), FakeLink()
    session.caller = leg
    attach(session, first)
    session.start()
    for _ in range(25):
        session.caller_audio(CALLER_FRAME)
    old_sid = first.named("start")[0]["streamSid"]
    session.agent_text(agent_audio_frame(b"\x22" * 160 * 150, old_sid))  # 3 s in one burst
    session.agent_text(json.dumps({"event": "mark", "mark": {"name": "after-burst"}}))
    loop.advance(0.2)  # ten frames play; 140 are still queued when the socket drops
    assert session.playout.backlog_frames == 140

    second = FakeLink()
    attach(session, second)  # the redialled socket
    connected, start = second.events()
    assert connected["event"] == "connected"
    assert start["sequenceNumber"] == "1" and start["streamSid"] != old_sid
    assert start["start"]["callSid"] == first.named("start")[0]["start"]["callSid"]
    assert session.playout.backlog_frames == 0  # the old socket's audio is gone
    session.caller_audio(CALLER_FRAME)
    media = second.named("media")[0]
    assert (media["sequenceNumber"], media["media"]["chunk"], media["media"]["timestamp"]) == (
        "2",
        "1",
        "0",
    )
    assert media["streamSid"] == start["streamSid"]
    # The new agent's audio plays at once, not after 2.8 s of the old one's.
    played = len(leg.sent)
    session.agent_text(agent_audio_frame(b"\x33" * 160, start["streamSid"]))
    assert leg.sent[played:] == [b"\x33" * 160]
    assert not first.named("mark") and not second.named("mark")  # the old mark is dropped
    session.stop("done")
    assert totals.counters.redial_frames_dropped == 140
    assert totals.counters.redial_marks_dropped == 1


def test_a_redialled_inkbox_agent_gets_a_new_stream_id_and_chunks_from_one() -> None:
    session = MediaSessionFactory(MediaClock(FakeLoop())).create(
        MediaPlan("call-6", caller_codec="PCMU"), NotedEvents()
    )
    first, second = FakeLink(), FakeLink()
    attach(session, first)
    for _ in range(3):
        session.caller_audio(CALLER_FRAME)
    attach(session, second)
    session.caller_audio(CALLER_FRAME)
    (start,) = second.named("start")
    (media,) = second.named("media")
    assert start["stream_id"] != first.named("start")[0]["stream_id"]
    assert media["stream_id"] == start["stream_id"]
    assert (media["media"]["chunk"], media["media"]["timestamp"]) == (1, 0)


def test_binary_media_follows_each_links_upgrade_answer_on_inkbox_only() -> None:
    accepts = {"x-trunkline-media-frames": "binary"}
    session = MediaSessionFactory(MediaClock(FakeLoop())).create(
        MediaPlan("call-7", caller_codec="PCMU"), NotedEvents()
    )
    first, second = FakeLink(accepts), FakeLink()
    attach(session, first)
    session.caller_audio(CALLER_FRAME)
    session.caller_digit("5")
    assert first.binary == [CALLER_FRAME] and first.named("media") == []
    assert [frame["event"] for frame in first.events()] == ["start", "dtmf"]
    attach(session, second)  # redialled: this agent did not accept
    session.caller_audio(CALLER_FRAME)
    assert second.binary == [] and len(second.named("media")) == 1
    twilio = MediaSessionFactory(MediaClock(FakeLoop())).create(
        MediaPlan("call-8", caller_codec="PCMU", agent_protocol="twilio"), NotedEvents()
    )
    link = FakeLink(accepts)  # never offered on the Twilio persona: the answer is ignored
    attach(twilio, link)
    twilio.caller_audio(CALLER_FRAME)
    assert link.binary == [] and len(link.named("media")) == 1


def test_wrong_shape_frames_are_counted_by_reason_and_logged_once_per_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rejected = metrics.AGENT_FRAMES_REJECTED.labels("twilio", "flat_media")
    before = rejected._value.get()
    plan = MediaPlan("call-7", caller_codec="PCMU", agent_protocol="twilio")
    session = MediaSessionFactory(MediaClock(FakeLoop())).create(plan, NotedEvents())
    attach(session, FakeLink())
    flat = json.dumps({"event": "media", "payload": base64.b64encode(b"\x22" * 160).decode()})
    with caplog.at_level(logging.WARNING, logger="trunkline.media"):
        for _ in range(3):
            session.agent_text(flat)
    assert rejected._value.get() - before == 3
    assert session.counters().agent_frames_rejected == 3 and session.playout.backlog_frames == 0
    (record,) = [r for r in caplog.records if "agent frame rejected" in r.getMessage()]
    assert "flat_media" in record.getMessage()
    assert "is not Twilio's shape" in record.getMessage()
    assert getattr(record, "call_id", None) == "call-7"


def test_a_buffering_leg_is_pulled_every_20_ms_even_when_the_agent_starts_talking() -> None:
    loop, session, leg, link = on_fake_clock()
    pulled: list[float] = []

    def next_frame() -> bytes | None:
        pulled.append(loop.time())
        return CALLER_FRAME if len(pulled) % 2 else None  # every other slot: nothing

    session.pull_caller_audio(next_frame)
    session.start()
    loop.advance(0.013)
    session.play_phone_audio(b"\x22" * 800)  # a talk spurt: the playout's slot moves earlier
    loop.advance(0.2)
    gaps = {round(b - a, 6) for a, b in zip(pulled, pulled[1:], strict=False)}
    assert gaps == {0.02} and len(pulled) >= 10  # the caller's cadence did not move
    assert len(link.named("media")) == (len(pulled) + 1) // 2  # None sends nothing
    session.stop("hangup")
    count = len(pulled)
    loop.advance(0.1)
    assert len(pulled) == count  # no pulls once stopped


class BufferedCaller:
    """A caller leg's jitter buffer as the RTP leg wires it to a session (no sockets):
    ``arrive`` pushes a packet and tells the session; each deadline is noted, and so is
    every frame it had to conceal."""

    def __init__(self, loop: FakeLoop, session: MediaSession) -> None:
        self.loop, self.session = loop, session
        self.buffer = JitterBuffer(on_arrival=True)
        self.deadlines: list[float] = []
        self.concealed = 0
        session.pull_caller_audio(self.at_deadline, self.buffer.pull_on_arrival)

    def at_deadline(self) -> bytes | memoryview | None:
        self.deadlines.append(self.loop.time())
        if not self.buffer.due():
            return None
        frame = self.buffer.pull()
        self.concealed += frame is None and self.buffer.started
        return frame

    def arrive(self, number: int) -> None:
        self.buffer.push(7, number, number * 160, memoryview(CALLER_FRAME), self.loop.time())
        self.session.caller_buffered()


@pytest.mark.parametrize("drift", [0.0, 0.0001, -0.0001], ids=["same", "slower", "faster"])
def test_a_buffered_caller_frame_goes_as_it_arrives_with_its_deadline_after_it(
    drift: float,
) -> None:
    """Packets come every 20 ms (± 0.1 ms: the caller's clock drifts 30 ms in 6 s): each
    frame is sent to the agent as its packet arrives, never concealed, and the pull of its
    period (the deadline) runs 5-15 ms after it, or a few frames' drift beyond."""
    loop, session, leg, link = on_fake_clock()
    caller = BufferedCaller(loop, session)
    session.start()
    start = loop.time()
    arrivals = []
    for number in range(300):
        arrival = start + 0.003 + number * (TICK_SECONDS + drift)
        loop.advance(arrival - loop.time())
        arrivals.append(arrival)
        caller.arrive(number)
        assert len(link.named("media")) == number + 1  # sent at once
    loop.advance(TICK_SECONDS)
    assert caller.concealed == 0 and caller.buffer.counters.shrunk == 0
    after = [min(d for d in caller.deadlines if d > a) - a for a in arrivals]
    slack = DRIFT_FRAMES * abs(drift) + 1e-9  # drifted before it was placed again
    assert min(after) > 0.005 - slack and max(after) <= 0.015 + slack
    session.stop("hangup")


def test_caller_frames_that_came_while_the_loop_stalled_are_played_not_concealed() -> None:
    """The loop is blocked for 70 ms, past three deadlines; the three packets that came
    meanwhile are read on waking, after the timers that fell due. The deadlines wait for
    that read: every frame goes to the agent and none is concealed."""
    loop, session, leg, link = on_fake_clock()
    caller = BufferedCaller(loop, session)
    session.start()
    start = loop.time() + 0.003
    for number in range(10):
        loop.advance(start + number * TICK_SECONDS - loop.time())
        caller.arrive(number)
    loop.stall(0.070)  # packets 10, 11 and 12 come meanwhile, unread
    loop.advance(0.0)  # the loop wakes: due timers run before it reads its sockets
    for number in (10, 11, 12):
        caller.arrive(number)
    loop.advance(start + 13 * TICK_SECONDS - loop.time())
    caller.arrive(13)
    assert len(link.named("media")) == 14  # every frame went, by the next packet
    assert caller.concealed == 0
    session.stop("hangup")


def test_agent_audio_streamed_in_real_time_goes_to_the_caller_as_it_arrives() -> None:
    """20 ms chunks that find the playout empty are played at once; each period still
    sends exactly one frame, and RTP time is told how much sooner the spurt began."""
    loop, session, _, link = on_fake_clock()
    rephased: list[float] = []
    leg = NotingLeg()
    leg.rephased = rephased.append  # type: ignore[method-assign]
    session.caller = leg
    session.start()
    start = loop.time()
    loop.advance(0.0523)  # silence so far: one frame per 20 ms
    silent = len(leg.sent)
    assert silent and set(leg.sent) == {None}
    for number in range(50):
        loop.advance(start + 0.0523 + number * TICK_SECONDS - loop.time())
        chunk = bytes([0x10 + number]) * 160
        session.play_phone_audio(chunk)
        assert leg.sent[-1] == chunk  # at once, not at the next tick
    loop.advance(0.015)  # the last period's deadline (12.7 ms on): it takes nothing more
    assert leg.sent[silent:] == [bytes([0x10 + n]) * 160 for n in range(50)]
    (earlier,) = rephased  # once, as the spurt began: sooner than its slot by this much
    assert 0 < earlier <= TICK_SECONDS
    loop.advance(0.040)
    assert leg.sent[-2:] == [None, None]  # silence again, a frame per 20 ms
    session.stop("hangup")


def test_a_burst_of_agent_audio_is_paced_by_the_tick() -> None:
    loop, session, leg, link = on_fake_clock()
    session.start()
    loop.advance(0.0523)
    silent = len(leg.sent)
    session.play_phone_audio(b"\x22" * 800)  # five frames at once (synthesized speech)
    assert len(leg.sent) == silent  # none at once: the tick paces a burst
    loop.advance(0.005)  # the next 5 ms slot plays the first
    assert leg.sent[silent:] == [b"\x22" * 160]
    loop.advance(0.080)
    assert leg.sent[silent:] == [b"\x22" * 160] * 5
    session.stop("hangup")


def test_an_agent_frame_that_comes_early_does_not_hold_back_the_rest_of_its_spurt() -> None:
    """From chunk 10 on, the agent's chunks come 17 ms sooner: chunk 10 comes 3 ms after
    chunk 9, in the same period. It is played at once too (a frame ahead of the ticks),
    and so is every chunk after it. One more, with two frames ahead already, waits for
    its tick."""
    loop, session, leg, link = on_fake_clock()
    session.start()
    start = loop.time() + 0.0523
    loop.advance(start - loop.time())
    times = [start + n * TICK_SECONDS - (0.017 if n >= 10 else 0) for n in range(30)]
    for number, arrival in enumerate(times):
        loop.advance(arrival - loop.time())
        session.play_phone_audio(bytes([0x10 + number]) * 160)
        assert leg.sent[-1] == bytes([0x10 + number]) * 160  # at once
    sent = len(leg.sent)
    session.play_phone_audio(b"\x70" * 160)  # two frames ahead of the ticks: this one waits
    assert len(leg.sent) == sent and session.playout.backlog_frames == 1
    loop.advance(0.060)  # two ticks whose frames went ahead, then this one's
    assert leg.sent[sent:] == [b"\x70" * 160] and session.playout.backlog_frames == 0
    session.stop("hangup")


def test_a_frame_queued_behind_a_stream_that_is_on_time_is_not_kept_there() -> None:
    """From chunk 10 on the agent's chunks come 17 ms sooner (each goes at once, a frame
    ahead of the ticks), and chunk 20 comes with chunk 19: it is two ahead and waits. Every
    chunk after it comes on time, so one frame would stay queued for the rest of the
    spurt; within a few ticks it is taken as delay, and from then on each chunk goes as
    it arrives again. Nothing is lost or reordered."""
    loop, session, leg, link = on_fake_clock()
    session.start()
    start = loop.time() + 0.0523
    loop.advance(start - loop.time())
    times = [start + n * TICK_SECONDS - (0.017 if n >= 10 else 0) for n in range(60)]
    times[20] = times[19]
    at_once = []
    for number, arrival in enumerate(times):
        loop.advance(arrival - loop.time())
        chunk = bytes([0x10 + number]) * 160
        session.play_phone_audio(chunk)
        at_once.append(leg.sent[-1] == chunk)
    assert not at_once[20]  # two ahead of the ticks already: it waits
    assert all(at_once[30:])  # the stream is no longer a frame behind
    assert session.playout.backlog_frames == 0
    loop.advance(0.060)
    played = [frame for frame in leg.sent if frame is not None]
    assert played == [bytes([0x10 + n]) * 160 for n in range(60)]
    session.stop("hangup")


def test_a_burst_of_synthesized_speech_is_never_played_faster_than_the_tick() -> None:
    """A long burst leaves a deep backlog that drains one frame per tick with nothing
    arriving in between: it is paced, not taken as delay, down to its last frames."""
    loop, session, leg, link = on_fake_clock()
    session.start()
    loop.advance(0.0523)
    silent = len(leg.sent)
    session.play_phone_audio(b"\x22" * 160 * 30)
    for tick in range(30):
        loop.advance(TICK_SECONDS)
        assert len(leg.sent) - silent == tick + 1  # one frame per tick, never two
    session.stop("hangup")


def test_an_agent_catching_up_after_a_stall_goes_at_once_not_a_stall_behind() -> None:
    """The loop stalls for 90 ms: the ticks it missed send the caller silence, and the
    agent's frames of those periods come together just after. They are late, not ahead:
    all go at once, and the stream after them goes as it arrives again."""
    loop, session, leg, link = on_fake_clock()
    session.start()
    start = loop.time() + 0.0523
    loop.advance(start - loop.time())

    def chunk(number: int) -> bytes:
        return bytes([0x10 + number]) * 160

    for number in range(10):
        loop.advance(start + number * TICK_SECONDS - loop.time())
        session.play_phone_audio(chunk(number))
    loop.stall(0.090)
    loop.advance(0.002)  # the missed ticks run: the caller gets silence
    assert leg.sent[-3:] == [None] * 3
    for number in range(10, 15):  # what the agent sent meanwhile, together
        session.play_phone_audio(chunk(number))
        assert leg.sent[-1] == chunk(number)
    resumed = loop.time()
    for number in range(15, 40):
        loop.advance(resumed + (number - 14) * TICK_SECONDS - loop.time())
        session.play_phone_audio(chunk(number))
        assert leg.sent[-1] == chunk(number)  # at once: no backlog was left behind
    played = [frame for frame in leg.sent if frame is not None]
    assert played == [bytes([0x10 + n]) * 160 for n in range(40)]
    session.stop("hangup")


def test_frames_after_a_pause_are_paced_as_a_new_talk_spurt() -> None:
    """After more than five silent slots the agent paused: frames that come together
    then are ahead of the ticks, two at most go at once."""
    loop, session, leg, link = on_fake_clock()
    session.start()
    loop.advance(0.2)
    for number in range(4):
        session.play_phone_audio(bytes([0x10 + number]) * 160)
    assert [frame for frame in leg.sent if frame is not None] == [b"\x10" * 160, b"\x11" * 160]
    assert session.playout.backlog_frames == 2
    session.stop("hangup")
