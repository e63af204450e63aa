"""Builds each call's media session from the process's shared media parts and the call's plan.

One ``MediaSessionFactory`` per gateway holds what every call shares: the
media clock, the recording writer, the speech engines and their workers, the
media totals, the playout cap and the caller jitter buffer's depth.
``create(plan, events)`` builds one call's session with exactly the taps its
plan asks for: a recorder only when the call is recorded, transcription only
when an engine is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from trunkline.media.barge_in import BargeIn
from trunkline.media.clock import MediaClock
from trunkline.media.counters import MediaTotals
from trunkline.media.plan import MediaEvents, MediaPlan
from trunkline.media.playout import DEFAULT_MAX_SECONDS
from trunkline.media.recording import CallRecorder, RecordingWriter
from trunkline.media.session import DEFAULT_CALLER_JITTER, MediaSession, SpeechParts
from trunkline.media.speech_output import SpeechOutput
from trunkline.media.speech_work import SpeechWork
from trunkline.media.transcription import Transcription
from trunkline.speech.engines import SpeechEngines


class MediaSessionFactory:
    def __init__(
        self,
        clock: MediaClock,
        *,
        recordings: RecordingWriter | None = None,
        speech: SpeechEngines | None = None,
        totals: MediaTotals | None = None,
        max_playout_seconds: float = DEFAULT_MAX_SECONDS,
        speech_clock: Callable[[], float] = time.monotonic,
        caller_jitter: tuple[int, int] = DEFAULT_CALLER_JITTER,
    ) -> None:
        self.clock = clock
        self.caller_jitter = caller_jitter  # frames: the RTP jitter buffer's least and most
        self.recordings = recordings
        self.speech = speech
        self.totals = totals
        self.max_playout_seconds = max_playout_seconds
        self._speech_clock = speech_clock

    def create(self, plan: MediaPlan, events: MediaEvents) -> MediaSession:
        """One call's media session; its caller leg and agent link are attached next."""
        recordings = self.recordings
        recorder = (
            CallRecorder(recordings, plan.call_id)
            if plan.record and recordings is not None
            else None
        )
        session = MediaSession(
            plan,
            events,
            clock=self.clock,
            max_playout_seconds=self.max_playout_seconds,
            totals=self.totals,
            recorder=recorder,
            caller_jitter=self.caller_jitter,
        )
        if self.speech is not None:
            session.use_speech(self._speech_parts(plan, events, session))
        return session

    def _speech_parts(
        self, plan: MediaPlan, events: MediaEvents, session: MediaSession
    ) -> SpeechParts:
        engines = self.speech
        assert engines is not None
        work = SpeechWork(plan.call_id, events.store_segment, clock=self._speech_clock)
        output = SpeechOutput(
            engines.synthesizer,
            engines.synthesis,
            work,
            playout=session.playout,
            play=session.play_phone_audio,
        )
        transcription = None
        if engines.transcriber is not None:
            transcription = Transcription(
                engines.transcriber,
                engines.transcription,
                work,
                barge_in=BargeIn(session.playout, output, session.send_control),
                send_to_agent=session.send_control,
                partial_every_ms=engines.partial_every_ms,
                neural_vad=engines.neural_vad,
            )
        return SpeechParts(work, output, transcription)
