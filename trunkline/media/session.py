"""The per-call media session: caller leg ⇄ agent link, a synchronous chain driven by callbacks.

Caller → agent: each caller frame (G.711, or G.722 decoded here once to
PCM16 at 16 kHz) arrives in ``caller_audio`` from the
leg's receive callback; the call's caller taps (recorder, transcription) get
it as PCM16 at 8 kHz, decoded once, and it is sent to the agent right there:
as a ``media`` frame, or as a binary frame of raw audio when the agent's
upgrade response accepted binary media (μ-law is passed through; A-law is
transcoded by one table lookup; PCM formats are decoded and resampled by the
call's persistent converter). A leg that buffers its audio (RTP's jitter buffer) has it pulled
instead, one frame per 20 ms on a clock subscription of its own that talk
spurts never move; a frame that can go as its packet arrives (in order, the
buffer's target depth behind it) goes then, and that pull is only its
deadline, 10-15 ms after the arrival (``media.deadline``). Agent → caller:
``media`` payloads (or binary frames) are converted to μ-law and go into the
call's ``Playout``; the shared 20 ms tick takes one frame per call, hands it
(as PCM16) to the slot taps and sends it to the caller leg. A single frame
(an agent streaming in real time) is played at once instead, and that
period's tick is its deadline, as long as frames played so are at most
``MAX_LEAD_FRAMES`` ahead of the ticks; a burst (synthesized speech) is paced
by the tick from the next 5 ms slot. An agent that fell behind (the caller got
silence for up to ``MAX_CATCH_UP_FRAMES`` slots, say while the loop stalled)
and catches up with several frames at once has them all go as they arrive:
they are late, not ahead. A frame or two that stand queued behind a
stream arriving in real time (one came too early to go at once) are delay,
not pacing, and go a frame at a time on top of the ticks' (``standing``). The taps are
lists built when the call's options are known: a call without recording has
no recorder tap. The wire protocol (Inkbox or the Twilio persona) is the
call's ``AgentPersona``. Nothing here creates a task or queue per frame.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from time import perf_counter_ns
from typing import Protocol

from trunkline import metrics
from trunkline.agent.formats import AgentToCaller, CallerToAgent
from trunkline.agent.inkbox_protocol import (
    AgentAudioDone,
    AgentClear,
    AgentMark,
    AgentMedia,
    AgentProtocolError,
    AgentStop,
    AgentText,
    AgentTranscript,
    binary_media_accepted,
)
from trunkline.agent.link import OP_BINARY, OP_TEXT, AgentLink
from trunkline.agent.persona import AgentPersona, InkboxPersona, persona_for
from trunkline.codecs.g711 import alaw_to_pcm16, ulaw_to_pcm16
from trunkline.codecs.g722 import G722Decoder
from trunkline.codecs.resample import StreamingResampler
from trunkline.media.clock import MediaClock
from trunkline.media.counters import (
    LATENCY_SAMPLE_EVERY,
    LATENCY_SAMPLE_MASK,
    LatencyHistogram,
    MediaCounters,
    MediaTotals,
)
from trunkline.media.deadline import ArrivalDeadline
from trunkline.media.plan import MediaEvents, MediaPlan
from trunkline.media.playout import MAX_PENDING_MARKS, Playout
from trunkline.media.recording import CallRecorder
from trunkline.media.speech_output import SpeechOutput
from trunkline.media.speech_work import SpeechWork
from trunkline.media.standing import StandingBacklog
from trunkline.media.transcription import Transcription
from trunkline.storage.models import utcnow

log = logging.getLogger("trunkline.media")
ARRIVALS_TRACKED = 64  # agent chunks awaiting their first frame, per call

CallerTap = Callable[[bytes], None]  # one caller frame, PCM16
SlotTap = Callable[[bytes | None], None]  # what was played in a slot, PCM16 (None: nothing)
CallerSource = Callable[[], bytes | memoryview | None]  # the caller's next 20 ms frame, if any
DEFAULT_CALLER_JITTER = (0, 3)  # frames: the RTP jitter buffer's least and most depth
# Agent frames played to the caller as they arrive may run this many ahead of the 20 ms
# ticks: an agent streaming in real time whose frame comes early (two in one period) is
# not held back a whole frame for the rest of its talk spurt.
MAX_LEAD_FRAMES = 2
# An agent that fell behind (the caller got silence for up to this many slots) and then
# catches up with several frames at once: those frames go as they arrive, not as lead.
# A longer gap is a pause, and what follows it is paced as a new talk spurt.
MAX_CATCH_UP_FRAMES = 5


class CallerLeg(Protocol):
    """The caller's side of a session: RTP from a SIP trunk, or a carrier's media WebSocket."""

    def send_frame(self, frame: bytes | None) -> None:
        """Send one 20 ms slot of μ-law audio (None: nothing to play in this slot)."""
        ...

    def detach(self) -> None:
        """Stop delivering caller audio to the session."""
        ...

    def rephased(self, earlier_seconds: float) -> None:
        """The next frame slot comes this much sooner than the 20 ms cadence said."""
        ...

    def rtp_counters(self) -> Mapping[str, int]:
        """The leg's RTP counters for the media metrics (empty for a leg without RTP)."""
        ...


class SpeechParts:
    """A call's speech parts: output always, transcription when an engine is configured."""

    __slots__ = ("output", "transcription", "work")

    def __init__(
        self, work: SpeechWork, output: SpeechOutput, transcription: Transcription | None
    ) -> None:
        self.work = work
        self.output = output
        self.transcription = transcription


class MediaSession:
    """Bridges one call's caller leg and agent link until ``stop``; built by the factory."""

    def __init__(
        self,
        plan: MediaPlan,
        events: MediaEvents,
        *,
        clock: MediaClock,
        max_playout_seconds: float,
        totals: MediaTotals | None,
        recorder: CallRecorder | None,
        caller_jitter: tuple[int, int] = DEFAULT_CALLER_JITTER,
    ) -> None:
        self.call_id = plan.call_id
        self._plan = plan
        # Least and most depth, in 20 ms frames, of a caller leg's jitter buffer (most 0: none).
        self.caller_jitter = caller_jitter
        self._caller_source: CallerSource | None = None
        self._arrived_source: CallerSource | None = None
        self._source_handle: int | None = None
        self._caller_deadline = ArrivalDeadline(clock)
        self.stream_id = str(uuid.uuid4())
        self.caller: CallerLeg | None = None
        self.persona: AgentPersona = persona_for(
            plan.agent_protocol, plan.call_id, plan.organization_id, self.stream_id
        )
        self._agent_attached = False  # a link was attached before: the next one is a redial
        self.agent_format = plan.agent_format
        self._custom = dict(plan.custom_parameters)
        self._speech_by_default = plan.speech_by_default
        codec = plan.caller_codec
        self._to_agent = CallerToAgent(plan.agent_format, codec=codec)
        self._to_caller = AgentToCaller(plan.agent_format)
        # G.722 is decoded once, to PCM16 at 16 kHz, for the agent and (at 8 kHz) the taps.
        self._wideband = G722Decoder() if codec == "G722" else None
        self._decode: Callable[[bytes | memoryview], bytes] = (
            StreamingResampler(16000, 8000).process
            if codec == "G722"
            else alaw_to_pcm16
            if codec == "PCMA"
            else ulaw_to_pcm16
        )
        self.playout = Playout(self._mark_played, max_seconds=max_playout_seconds)
        self._clock = clock
        self._tick_handle: int | None = None
        self._playout_deadline = ArrivalDeadline(clock)
        # Frames sent to the caller as they arrived, ahead of the ticks of their periods.
        self._lead = 0
        self._silent_slots = 0  # slots in a row that played no agent audio
        self._owed = 0  # frames of a gap the agent is catching up on, until the next tick
        self._standing = StandingBacklog()
        self._media_failed = False
        self._events = events
        self.link: AgentLink | None = None
        self.agent_frames_rejected = 0
        self.redial_frames_dropped = 0
        self.redial_marks_dropped = 0
        self.frames_to_agent = 0
        self.frames_to_caller = 0
        self._sending = False  # the last slot played agent audio
        self.to_agent = LatencyHistogram()
        self.to_caller = LatencyHistogram()
        # (number of the first frame of a sampled agent chunk, its arrival time), oldest first
        self._arrivals: deque[tuple[int, int]] = deque(maxlen=ARRIVALS_TRACKED)
        self._chunks_arrived = 0  # agent chunks queued: one in LATENCY_SAMPLE_EVERY is timed
        self._totals = totals
        self.recorder = recorder
        self.started_at: datetime | None = None  # media (and the recording) began
        self.stopped_at: datetime | None = None
        self.speech: SpeechOutput | None = None
        self._call_speech: SpeechParts | None = None
        self._caller_as_text = False  # speech-to-text mode: the agent gets the caller as text
        self._binary_media = False  # the agent's link takes caller audio as binary frames
        self._caller_taps: tuple[CallerTap, ...] = ()
        self._slot_taps: tuple[SlotTap, ...] = ()
        self._retap()

    def use_speech(self, speech: SpeechParts) -> None:
        """Give the session its speech parts (the factory does, before the agent attaches)."""
        self._call_speech = speech
        self.speech = speech.output
        self._retap()

    def _retap(self) -> None:
        """Rebuild the tap lists; called when the call's options or speech modes change."""
        recorder, speech = self.recorder, self._call_speech
        transcription = speech.transcription if speech is not None else None
        caller: list[CallerTap] = []
        slot: list[SlotTap] = []
        if recorder is not None:
            caller.append(recorder.caller)
            slot.append(recorder.slot)
        if transcription is not None:
            caller.append(transcription.caller_frame)
            assert speech is not None
            if transcription.hears_agent and not speech.output.tts_mode:
                slot.append(transcription.agent_frame)
            if transcription.stt_mode:  # the echo guard hears what the caller was played
                slot.append(transcription.played_frame)
        self._caller_taps, self._slot_taps = tuple(caller), tuple(slot)

    def media_times(self) -> dict[str, datetime]:
        """When media started and stopped, for the call record: it matches the recording."""
        times = {}
        if self.started_at is not None:
            times["started_at"] = self.started_at
        if self.stopped_at is not None:
            times["ended_at"] = self.stopped_at
        return times

    @property
    def stt_mode(self) -> bool:
        return self._caller_as_text

    @property
    def tts_mode(self) -> bool:
        return self.speech is not None and self.speech.tts_mode

    # -- wiring ----------------------------------------------------------------------
    def attach_agent(self, link: AgentLink) -> None:
        """Bridge to ``link``; the Inkbox agent's upgrade response picks the speech modes.

        A link after the first (the agent was redialled) gets a fresh stream.
        """
        if self._agent_attached:
            self._fresh_stream()
        self._agent_attached = True
        self.link = link
        link.on_text = self.agent_text  # straight here, once per agent frame
        link.on_binary = self.agent_audio
        link.on_overflow = self._events.agent_overflowed  # it stopped reading: the call ends
        inkbox = isinstance(self.persona, InkboxPersona)
        self._binary_media = inkbox and binary_media_accepted(link.response_headers)
        speech = self._call_speech
        if speech is not None and inkbox:
            headers = link.response_headers
            default = self._speech_by_default
            transcription = speech.transcription
            if transcription is not None:
                transcription.stt_mode = header_flag(
                    headers.get("x-use-inkbox-speech-to-text"), default
                )
                self._caller_as_text = transcription.stt_mode
            speech.output.tts_mode = speech.output.can_speak and header_flag(
                headers.get("x-use-inkbox-text-to-speech"), default
            )
            self._retap()
        for frame in self.persona.opening(self.agent_format, self._custom):
            link.send_text(frame)

    def _fresh_stream(self) -> None:
        """A redialled agent starts a new stream: a new stream id, numbering from 1, and
        nothing of the lost socket's left to play (its queued audio, speech and marks)."""
        self.link = None  # nothing is echoed to the old socket, nor to the new one
        plan = self._plan
        self.stream_id = str(uuid.uuid4())
        self.persona = persona_for(
            plan.agent_protocol, plan.call_id, plan.organization_id, self.stream_id
        )
        if self.speech is not None:
            self.speech.clear()
        frames, marks = self.playout.discard()
        self.redial_frames_dropped += frames
        self.redial_marks_dropped += marks
        self._to_caller = AgentToCaller(plan.agent_format)
        self._arrivals.clear()
        self._sending = False

    def pull_caller_audio(self, source: CallerSource, arrived: CallerSource | None = None) -> None:
        """The caller leg buffers its audio: take a frame from ``source`` every 20 ms.

        The pull has its own clock subscription, which a talk spurt of the agent never
        moves (that moves only the playout's). With ``arrived``, the leg calls
        ``caller_buffered`` as its packets come: a frame ``arrived`` gives then is sent at
        once, and that period's pull is its deadline (``source`` gives nothing then).
        """
        self._caller_source = source
        self._arrived_source = arrived
        if self._tick_handle is not None and self._source_handle is None:
            self._source_handle = self._clock.subscribe(self._pull_caller, self._tick_failed)

    def start(self) -> None:
        if self._tick_handle is None:
            self._tick_handle = self._clock.subscribe(self._tick, self._tick_failed)
            if self._caller_source is not None and self._source_handle is None:
                self._source_handle = self._clock.subscribe(self._pull_caller, self._tick_failed)
            if self.started_at is None:
                self.started_at = utcnow()  # the call's answer time: the recording starts here

    def stop(self, reason: str) -> asyncio.Future[None] | None:
        """Stop media: tell the agent why, close its socket, stop the tick.

        Returns a future that resolves once the call's last transcripts are
        stored (None without speech).
        """
        if self._tick_handle is not None:
            self._clock.unsubscribe(self._tick_handle)
            self._tick_handle = None
            self.stopped_at = utcnow()
        if self._source_handle is not None:
            self._clock.unsubscribe(self._source_handle)
            self._source_handle = None
        if self.caller is not None:
            self.caller.detach()
        if self._totals is not None:
            self._totals.add(self.counters(), self.to_agent, self.to_caller, self.rtp_counters())
            self._totals = None
        if self.recorder is not None:
            self.recorder.finish(self._events.recording_finished)
            self.recorder = None
            self._retap()
        link, self.link = self.link, None
        if link is not None and link.open:
            if link.has_room:  # an agent that stopped reading is not told: its socket closes
                link.send_text(self.persona.stop(reason))
            link.close(1000, reason)
        speech = self._call_speech
        if speech is None:
            return None
        speech.output.close()
        if speech.transcription is not None:
            speech.transcription.close()
        return speech.work.drained()

    # -- caller -> agent -------------------------------------------------------------
    def caller_audio(self, payload: bytes | memoryview) -> None:
        """One 20 ms frame of caller audio (G.711 or G.722): from the leg's receive callback,
        or pulled from its jitter buffer."""
        wideband = self._wideband
        if wideband is not None:
            payload = wideband.decode(payload)  # every frame: ADPCM state must not skip one
        taps = self._caller_taps
        if taps:
            pcm = self._decode(payload)
            for tap in taps:
                tap(pcm)
        if self._caller_as_text:
            return  # the agent gets the caller as text instead
        link = self.link
        if link is None:
            return
        sampled = not self.frames_to_agent & LATENCY_SAMPLE_MASK  # the latency probe's frame
        started = perf_counter_ns() if sampled else 0
        to_agent = self._to_agent
        audio = payload if to_agent.passthrough else to_agent.convert(payload)
        if audio and (
            link.send_frame(OP_BINARY, audio, True)
            if self._binary_media
            else link.send_frame(OP_TEXT, self.persona.media(audio), True)
        ):
            self.frames_to_agent += 1
            if sampled:
                self.to_agent.observe_ns(perf_counter_ns() - started, LATENCY_SAMPLE_EVERY)

    def _pull_caller(self) -> None:
        source = self._caller_source
        if source is not None:
            frame = source()
            if frame is not None:
                self.caller_audio(frame)

    def caller_buffered(self) -> None:
        """The caller leg buffered a packet: send the frames it can play now, if any.

        The pull of that frame's period is its deadline (``media.deadline``).
        """
        handle, arrived = self._source_handle, self._arrived_source
        if handle is None or arrived is None:
            return
        while (frame := arrived()) is not None:  # more than one: catching up
            self._caller_deadline.arrived(handle)
            self.caller_audio(frame)

    def caller_digit(self, digit: str) -> None:
        if self.link is not None:
            self.link.send_text(self.persona.dtmf(digit))

    # -- agent -> caller -------------------------------------------------------------
    def agent_text(self, text: str) -> None:
        """One text frame from the agent (called from the link's data_received)."""
        persona = self.persona
        audio = persona.media_payload(text)  # the usual frame: no message object made
        if audio is not None:
            self.agent_audio(audio)
            return
        try:
            message = persona.parse(text)
        except AgentProtocolError as exc:
            self._reject(exc.reason, str(exc))
            return
        speech = self.speech
        if isinstance(message, AgentMedia):
            self.agent_audio(message.payload)
        elif isinstance(message, AgentMark):
            if (speech is None or not speech.agent_mark(message.name)) and not self.playout.mark(
                message.name
            ):
                self._reject(
                    "too_many_marks", f"more than {MAX_PENDING_MARKS} marks wait for their audio"
                )
        elif isinstance(message, AgentClear):
            if speech is not None:
                speech.clear()
            self.playout.clear()
        elif isinstance(message, AgentAudioDone):
            self.playout.audio_done()
        elif isinstance(message, AgentStop):
            self._events.agent_stopped(message.reason)
        elif isinstance(message, AgentTranscript):
            if message.party == "local":
                self._agent_reports_transcripts()
            if message.is_final:
                self._events.agent_transcript(message.party, message.text)
        elif isinstance(message, AgentText) and (
            speech is None or not speech.agent_text(message.delta, message.done)
        ):
            self._reject("text_without_tts", "text frame while text-to-speech is off")

    def _reject(self, reason: str, why: str) -> None:
        """An agent frame was dropped: counted by reason, and logged once per call."""
        self.agent_frames_rejected += 1
        metrics.AGENT_FRAMES_REJECTED.labels(self.persona.name, reason).inc()
        if self.agent_frames_rejected == 1:  # the agent's author learns why the caller hears less
            log.warning(
                "agent frame rejected (%s persona, %s): %s; later rejections on this call are "
                "only counted (trunkline_agent_frames_rejected_total)",
                self.persona.name,
                reason,
                why,
                extra={"call_id": self.call_id},
            )

    def _agent_reports_transcripts(self) -> None:
        """The agent sends its own transcripts: its audio is no longer transcribed."""
        speech = self._call_speech
        if speech is not None and speech.transcription is not None:
            speech.transcription.agent_reports_transcripts()
            self._retap()

    def send_control(self, frame: str) -> None:
        """A control frame to the agent (transcripts, barge-in), if it is connected."""
        if self.link is not None:
            self.link.send_text(frame)

    def agent_audio(self, audio: bytes) -> None:
        """Agent audio in its own format (a ``media`` payload or a binary frame)."""
        to_caller = self._to_caller
        self.play_phone_audio(audio if to_caller.passthrough else to_caller.convert(audio))

    def play_phone_audio(self, ulaw: bytes) -> None:
        """Queue μ-law 8 kHz audio for the caller (agent media, synthesized speech, tones)."""
        chunk = self._chunks_arrived
        self._chunks_arrived = chunk + 1
        if not chunk & LATENCY_SAMPLE_MASK:  # the latency probe's chunk
            self._arrivals.append((self.playout.queued_total + 1, perf_counter_ns()))
        playout = self.playout
        grown = playout.push(ulaw)
        self._standing.arrived()
        handle = self._tick_handle
        if handle is None or self.caller is None or not grown:
            return
        single = grown == 1
        if not single:
            self._owed = 0  # a burst is paced from its start
        elif self._owed:
            # The agent is catching up on a gap the caller heard as silence: these
            # frames are late, not ahead of the ticks.
            self._owed -= 1
            self._play(playout.tick())
            return
        if single and self._lead < MAX_LEAD_FRAMES:
            # One frame, as an agent streaming in real time sends it: it goes now, and
            # the tick of its period becomes its deadline.
            earlier = self._playout_deadline.arrived(handle, restart=not self._sending)
            if not self._sending:
                self._rephased(earlier)
                gap = self._silent_slots
                self._owed = gap if gap <= MAX_CATCH_UP_FRAMES else 0
            self._lead += 1
            self._play(playout.tick())
        elif not self._sending:
            # A burst starts a talk spurt: paced from the next 5 ms slot, not up to 20 ms later.
            self._rephased(self._clock.rephase(handle))

    def _rephased(self, earlier: float) -> None:
        """The caller's next frame goes ``earlier`` seconds before its 20 ms slot."""
        if earlier and self.caller is not None:
            self.caller.rephased(earlier)
            if self.recorder is not None:
                self.recorder.rephased(earlier)

    def _mark_played(self, name: str) -> None:
        if self.link is not None:
            self.link.send_text(self.persona.mark(name))

    def _tick_failed(self, error: Exception) -> None:
        """A tick (the playout's or the caller pull's) raised and the clock dropped it:
        said once, and the call ends."""
        if self._media_failed:
            return
        self._media_failed = True
        log.error(
            "media tick failed; ending the call", exc_info=error, extra={"call_id": self.call_id}
        )
        self._events.media_failed()

    def _tick(self) -> None:
        playout = self.playout
        self._owed = 0  # only frames that came with the first after the gap catch up
        if self._lead:
            self._lead -= 1  # this period's frame went as it arrived
        else:
            self._play(playout.tick())
        if self._standing.drain_one(playout.backlog_frames):
            self._play(playout.tick())  # a frame queued behind a stream that is on time

    def _play(self, frame: bytes | None) -> None:
        """One 20 ms slot to the caller: the slot taps get it, then the leg."""
        playout = self.playout
        self._sending = frame is not None
        self._silent_slots = 0 if frame is not None else self._silent_slots + 1
        taps = self._slot_taps
        if taps:
            pcm = ulaw_to_pcm16(frame) if frame is not None else None  # decoded once for all
            for tap in taps:
                tap(pcm)
        if self.caller is not None:
            self.caller.send_frame(frame)
        if frame is not None:
            self.frames_to_caller += 1
            arrivals = self._arrivals
            if arrivals and arrivals[0][0] <= playout.played_total:
                elapsed = perf_counter_ns() - arrivals.popleft()[1]
                self.to_caller.observe_ns(elapsed, LATENCY_SAMPLE_EVERY)
                while arrivals and arrivals[0][0] <= playout.played_total:
                    arrivals.popleft()  # chunks that did not start a frame of their own

    # -- counters ----------------------------------------------------------------------
    def counters(self) -> MediaCounters:
        link = self.link
        return MediaCounters(
            frames_to_agent=self.frames_to_agent,
            frames_to_caller=self.frames_to_caller,
            agent_frames_rejected=self.agent_frames_rejected,
            agent_frames_dropped=link.dropped_frames if link is not None else 0,
            playout_frames_dropped=self.playout.dropped_frames,
            redial_frames_dropped=self.redial_frames_dropped,
            redial_marks_dropped=self.redial_marks_dropped,
        )

    def rtp_counters(self) -> dict[str, int]:
        leg = self.caller
        return dict(leg.rtp_counters()) if leg is not None else {}


def header_flag(value: str | None, default: bool = True) -> bool:
    """An ``X-Use-Inkbox-*`` header; absent means ``default`` (true, as on Inkbox)."""
    if value is None:
        return default
    return value.strip().lower() not in ("false", "0", "no", "off")
