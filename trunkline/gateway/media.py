"""The per-call media bridge: caller RTP ⇄ agent WebSocket, driven by callbacks and the tick.

Caller → agent: each RTP payload arrives in ``datagram_received`` and is sent
to the agent as a ``media`` frame right there (μ-law is passed through; A-law
is transcoded by one table lookup; PCM formats are decoded and resampled by
the call's persistent converter). Agent → caller: ``media`` payloads (or
binary frames) are converted to μ-law and go into the call's ``Playout``; the
shared 20 ms tick takes one frame per call and sends it as RTP. The wire
protocol (Inkbox or the Twilio persona) is the call's ``AgentPersona``.
Nothing here creates a task or queue per frame.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from time import perf_counter_ns
from typing import Protocol

from trunkline.agent.formats import (
    AGENT_FORMATS,
    AgentAudioFormat,
    AgentToCaller,
    CallerToAgent,
)
from trunkline.agent.inkbox_protocol import (
    AgentAudioDone,
    AgentClear,
    AgentMark,
    AgentMedia,
    AgentProtocolError,
    AgentStop,
    AgentText,
    AgentTranscript,
)
from trunkline.agent.link import AgentLink
from trunkline.agent.persona import AgentPersona, InkboxPersona, persona_for
from trunkline.codecs.g711 import ULAW_TO_ALAW, alaw_to_pcm16, ulaw_to_pcm16
from trunkline.gateway.call_speech import CallSpeech, StoreSegment
from trunkline.gateway.rtp.rtcp import REPORT_INTERVAL_FRAMES, build_report
from trunkline.gateway.rtp.session import RtpSession
from trunkline.gateway.rtp.transport import RtpEndpoint
from trunkline.media.clock import MediaClock
from trunkline.media.counters import LatencyHistogram, MediaCounters, MediaTotals
from trunkline.media.playout import Playout
from trunkline.media.recording import CallRecorder
from trunkline.speech.engines import SpeechEngines
from trunkline.storage.models import utcnow

log = logging.getLogger("trunkline.media")
MULAW_SILENCE_FRAME = b"\xff" * 160
ALAW_SILENCE_FRAME = b"\xd5" * 160
ARRIVALS_TRACKED = 64  # agent chunks awaiting their first frame, per call
FRAME_NS = 20_000_000


class CallerLeg(Protocol):
    """The caller's side of a bridge: RTP from a SIP trunk, or a carrier's media WebSocket."""

    def send_frame(self, frame: bytes | None) -> None:
        """Send one 20 ms slot of μ-law audio (None: nothing to play in this slot)."""
        ...

    def detach(self) -> None:
        """Stop delivering caller audio to the bridge."""
        ...

    def rephased(self, earlier_seconds: float) -> None:
        """The next frame slot comes this much sooner than the 20 ms cadence said."""
        ...


class RtpLeg:
    """The caller over RTP: the session filters and packetises, the endpoint sends."""

    __slots__ = ("_until_report", "alaw", "endpoint", "session")

    def __init__(
        self,
        endpoint: RtpEndpoint,
        bridge: MediaBridge,
        *,
        payload_type: int,
        event_payload_type: int | None,
        remote: tuple[str, int],
        signalling_host: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.alaw = payload_type == 8
        self.session = RtpSession(
            payload_type,
            event_payload_type,
            bridge.caller_audio,
            bridge.caller_digit,
            remote=remote,
            signalling_host=signalling_host,
        )
        endpoint.session = self.session
        # The first report goes out at a random point of the first 5 s (calls stay out of step).
        self._until_report = 50 + secrets.randbelow(REPORT_INTERVAL_FRAMES)

    def send_frame(self, frame: bytes | None) -> None:
        # Silence is sent, not suppressed: carriers end calls whose RTP stops flowing.
        if frame is None:
            frame = ALAW_SILENCE_FRAME if self.alaw else MULAW_SILENCE_FRAME
        elif self.alaw:
            frame = frame.translate(ULAW_TO_ALAW)
        packet = self.session.next_frame(frame)
        if packet is not None:
            self.endpoint.send(packet)
        self._until_report -= 1
        if self._until_report <= 0:
            self._until_report = REPORT_INTERVAL_FRAMES
            self._send_report()

    def _send_report(self) -> None:
        rtcp = self.endpoint.rtcp
        if rtcp is None:
            return
        session = self.session
        counters = session.counters
        self.endpoint.send_rtcp(
            build_report(
                ssrc=session.ssrc,
                rtp_timestamp=session.out_timestamp,
                packets_sent=counters.packets_out,
                octets_sent=counters.bytes_out - 12 * counters.packets_out,
                stats=session.reception_stats(),
                state=rtcp.state,
                now_unix=time.time(),
                now_mono=time.monotonic(),
            )
        )

    def detach(self) -> None:
        self.endpoint.session = None

    def rephased(self, earlier_seconds: float) -> None:
        # Keep RTP time with wall time: the next packet is stamped that much earlier.
        self.session.rewind(round(earlier_seconds * 8000))


class MediaBridge:
    """Bridges one call's caller leg and agent link until ``stop``."""

    def __init__(
        self,
        call_id: str,
        *,
        caller_alaw: bool,
        clock: MediaClock,
        on_agent_stop: Callable[[str | None], None],
        on_agent_overflow: Callable[[], None] | None = None,
        on_transcript: Callable[[str, str], None] | None = None,
        max_playout_seconds: float = 60.0,
        agent_protocol: str = "inkbox",
        organization_id: str = "",
        agent_format: AgentAudioFormat = AGENT_FORMATS["mulaw8k"],
        custom_parameters: dict[str, str] | None = None,
        totals: MediaTotals | None = None,
        recorder: CallRecorder | None = None,
        speech: SpeechEngines | None = None,
        store_segment: StoreSegment | None = None,
        speech_by_default: bool = True,
    ) -> None:
        self.call_id = call_id
        self.stream_id = str(uuid.uuid4())
        self.caller: CallerLeg | None = None
        self.persona: AgentPersona = persona_for(
            agent_protocol, call_id, organization_id, self.stream_id
        )
        self.agent_format = agent_format
        self._custom = custom_parameters or {}
        self._to_agent = CallerToAgent(agent_format, alaw=caller_alaw)
        self._to_caller = AgentToCaller(agent_format)
        self.playout = Playout(self._mark_played, max_seconds=max_playout_seconds)
        self._clock = clock
        self._tick_handle: int | None = None
        self._on_agent_stop = on_agent_stop
        self._on_agent_overflow = on_agent_overflow
        self._on_transcript = on_transcript
        self.link: AgentLink | None = None
        self.agent_frames_rejected = 0
        self.frames_to_agent = 0
        self.frames_to_caller = 0
        self._sending = False  # the last slot played agent audio
        self._recording_ahead_ns = 0  # how far rephased ticks ran ahead of wall time
        self.to_agent = LatencyHistogram()
        self.to_caller = LatencyHistogram()
        # (number of the first frame of an agent chunk, its arrival time), oldest first
        self._arrivals: deque[tuple[int, int]] = deque(maxlen=ARRIVALS_TRACKED)
        self._totals = totals
        self.recorder = recorder
        self.on_recorded: Callable[[str, Path], None] | None = None  # on the writer's thread
        self._caller_alaw = caller_alaw
        self.started_at: datetime | None = None  # media (and the recording) began
        self.stopped_at: datetime | None = None
        self.speech: CallSpeech | None = None
        # Inkbox's speech modes default on; a number that asks for PCM audio wants audio.
        self._speech_by_default = speech_by_default
        if speech is not None and store_segment is not None:
            self.speech = CallSpeech(
                call_id,
                speech,
                playout=self.playout,
                play=self.play_phone_audio,
                send_to_agent=self._send_control,
                store_segment=store_segment,
            )

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
        return self.speech is not None and self.speech.stt_mode

    @property
    def tts_mode(self) -> bool:
        return self.speech is not None and self.speech.tts_mode

    # -- wiring ----------------------------------------------------------------------
    def attach_agent(self, link: AgentLink) -> None:
        """Bridge to ``link``; the Inkbox agent's upgrade response picks the speech modes."""
        self.link = link
        link.on_binary = self.agent_audio
        link.on_overflow = self._on_agent_overflow  # it stopped reading: the call ends
        speech = self.speech
        if speech is not None and isinstance(self.persona, InkboxPersona):
            headers = link.response_headers
            default = self._speech_by_default
            speech.stt_mode = speech.can_transcribe and header_flag(
                headers.get("x-use-inkbox-speech-to-text"), default
            )
            speech.tts_mode = speech.can_speak and header_flag(
                headers.get("x-use-inkbox-text-to-speech"), default
            )
        for frame in self.persona.opening(self.agent_format, self._custom):
            link.send_text(frame)

    def start(self) -> None:
        if self._tick_handle is None:
            self._tick_handle = self._clock.subscribe(self._tick)
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
        if self.caller is not None:
            self.caller.detach()
        if self._totals is not None:
            self._totals_absorb(self._totals)
            self._totals = None
        if self.recorder is not None:
            self.recorder.finish(self.on_recorded)
            self.recorder = None
        link, self.link = self.link, None
        if link is not None and link.open:
            if link.has_room:  # an agent that stopped reading is not told: its socket closes
                link.send_text(self.persona.stop(reason))
            link.close(1000, reason)
        return self.speech.close() if self.speech is not None else None

    # -- caller -> agent -------------------------------------------------------------
    def caller_audio(self, payload: bytes | memoryview) -> None:
        """One 20 ms frame of caller audio (G.711), straight from the leg's receive callback."""
        recorder, speech = self.recorder, self.speech
        listener = speech if speech is not None and speech.hears_caller else None
        if recorder is not None or listener is not None:
            pcm = alaw_to_pcm16(payload) if self._caller_alaw else ulaw_to_pcm16(payload)
            if recorder is not None:
                recorder.caller(pcm)
            if listener is not None:
                listener.caller_frame(pcm)
        if speech is not None and speech.stt_mode:
            return  # the agent gets the caller as text instead
        link = self.link
        if link is None:
            return
        started = perf_counter_ns()
        audio = self._to_agent.convert(payload)
        if audio and link.send_text(self.persona.media(audio), droppable=True):
            self.frames_to_agent += 1
            self.to_agent.observe_ns(perf_counter_ns() - started)

    def caller_digit(self, digit: str) -> None:
        if self.link is not None:
            self.link.send_text(self.persona.dtmf(digit))

    # -- agent -> caller -------------------------------------------------------------
    def agent_text(self, text: str) -> None:
        """One text frame from the agent (called from the link's data_received)."""
        try:
            message = self.persona.parse(text)
        except AgentProtocolError as exc:
            self.agent_frames_rejected += 1
            log.debug("agent frame rejected: %s", exc, extra={"call_id": self.call_id})
            return
        if isinstance(message, AgentMedia):
            self.agent_audio(message.payload)
        elif isinstance(message, AgentMark):
            if (
                self.speech is None or not self.speech.agent_mark(message.name)
            ) and not self.playout.mark(message.name):
                self.agent_frames_rejected += 1  # too many marks waiting for their audio
        elif isinstance(message, AgentClear):
            if self.speech is not None:
                self.speech.clear()
            self.playout.clear()
        elif isinstance(message, AgentAudioDone):
            self.playout.audio_done()
        elif isinstance(message, AgentStop):
            self._on_agent_stop(message.reason)
        elif isinstance(message, AgentTranscript):
            if message.party == "local" and self.speech is not None:
                self.speech.agent_reports_transcripts()
            if self._on_transcript is not None and message.is_final:
                self._on_transcript(message.party, message.text)
        elif isinstance(message, AgentText) and (
            self.speech is None or not self.speech.agent_text(message.delta, message.done)
        ):
            self.agent_frames_rejected += 1  # text-to-speech is off for this call

    def _send_control(self, frame: str) -> None:
        if self.link is not None:
            self.link.send_text(frame)

    def agent_audio(self, audio: bytes) -> None:
        """Agent audio in its own format (a ``media`` payload or a binary frame)."""
        self.play_phone_audio(self._to_caller.convert(audio))

    def play_phone_audio(self, ulaw: bytes) -> None:
        """Queue μ-law 8 kHz audio for the caller (agent media, synthesized speech, tones)."""
        self._arrivals.append((self.playout.queued_total + 1, perf_counter_ns()))
        self.playout.push(ulaw)
        if not self._sending and self._tick_handle is not None and self.caller is not None:
            # A talk spurt starts: play it from the next 5 ms slot, not up to 20 ms later.
            earlier = self._clock.rephase(self._tick_handle)
            if earlier:
                self.caller.rephased(earlier)
                self._recording_ahead_ns += int(earlier * 1e9)

    def _mark_played(self, name: str) -> None:
        if self.link is not None:
            self.link.send_text(self.persona.mark(name))

    def _tick(self) -> None:
        frame = self.playout.tick()
        self._sending = frame is not None
        recorder, speech = self.recorder, self.speech
        listener = speech if speech is not None and speech.hears_agent else None
        if recorder is not None or listener is not None:
            pcm = ulaw_to_pcm16(frame) if frame is not None else None  # decoded once for both
            if recorder is not None:
                if self._recording_ahead_ns >= FRAME_NS:
                    # Rephased ticks came early: skip a slot so the recording keeps wall time.
                    self._recording_ahead_ns -= FRAME_NS
                else:
                    recorder.slot(pcm)
            if listener is not None:
                listener.agent_frame(pcm)
        if self.caller is not None:
            self.caller.send_frame(frame)
        if frame is not None:
            self.frames_to_caller += 1
            arrivals = self._arrivals
            if arrivals and arrivals[0][0] <= self.playout.played_total:
                self.to_caller.observe_ns(perf_counter_ns() - arrivals.popleft()[1])
                while arrivals and arrivals[0][0] <= self.playout.played_total:
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
        )

    def rtp_counters(self) -> dict[str, int]:
        leg = self.caller
        if not isinstance(leg, RtpLeg):
            return {}
        return asdict(leg.session.counters)

    def _totals_absorb(self, totals: MediaTotals) -> None:
        totals.add(self.counters(), self.to_agent, self.to_caller, self.rtp_counters())


def header_flag(value: str | None, default: bool = True) -> bool:
    """An ``X-Use-Inkbox-*`` header; absent means ``default`` (true, as on Inkbox)."""
    if value is None:
        return default
    return value.strip().lower() not in ("false", "0", "no", "off")
