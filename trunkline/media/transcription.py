"""Transcription: both parties' speech cut into utterances and transcribed off the loop.

The session feeds every 20 ms frame of each party (caller frames as they
arrive, what was played to the caller on the tick) to a ``SpeechSegmenter``;
only whole utterances leave the event loop, as jobs for the transcription
workers. What comes back becomes transcript segments (stored, and announced
as ``transcript.segment``) and, in speech-to-text mode, ``transcript`` frames
to the agent: partials at a steady cadence while the caller speaks, then one
final per turn. While the caller speaks in speech-to-text mode, ``BargeIn``
decides whether the agent is interrupted.

Incremental decoding (speech-to-text mode, an engine that batches): every
``partial_every_ms`` of caller speech the audio so far is queued as a
background job when the workers are idle (at most one in flight per call); ``LocalAgreement`` keeps the
words two passes agreed on, and the final pass gets them as its decoder
prefix, so at the end of speech only the tail is decoded. Partials are the
first work shed under overload; finals are not. ``latest_partial`` is the
text of the last partial pass of the caller's current utterance.

Early final: once the caller has been silent for ``EARLY_FINAL_AFTER_FRAMES``
(and no job waits for a worker), the utterance up to its last voiced frame is decoded
while the detector still waits out its hang-over. If the utterance then ends
with no more voice, that text is the final (sent at once, or when the pass
finishes); if the caller spoke again, it is ignored and the next silence
starts another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trunkline import metrics
from trunkline.agent.inkbox_protocol import transcript_frame
from trunkline.media.barge_in import BargeIn
from trunkline.media.speech_work import JobPool, Party, SpeechWork
from trunkline.speech.incremental import LocalAgreement
from trunkline.speech.segmenter import (
    FRAME_BYTES,
    FRAME_MS,
    SpeechSegmenter,
    SpeechStarted,
    Utterance,
)
from trunkline.speech.transcriber import Transcriber, TranscriptionRequest
from trunkline.speech.workers import BACKGROUND, URGENT, JobShed

log = logging.getLogger("trunkline.speech")

DEFAULT_PARTIAL_EVERY_MS = 400
EARLY_FINAL_AFTER_FRAMES = 6  # 120 ms of silence: start decoding the final during the hang-over


class _EarlyFinal:
    """A final pass started during the hang-over, for an utterance of ``length`` bytes."""

    __slots__ = ("length", "started_ms", "text", "turn_id", "utterance")

    def __init__(self, turn_id: int, length: int, started_ms: int) -> None:
        self.turn_id = turn_id
        self.length = length
        self.started_ms = started_ms
        self.text: str | None = None  # the pass's text once done
        self.utterance: Utterance | None = None  # set when the utterance ended as expected


class _Party:
    """One side of the call: its segmenter, where its utterance began, its partial passes."""

    __slots__ = (
        "agreement",
        "early",
        "name",
        "next_partial",
        "partial_in_flight",
        "segmenter",
        "started_ms",
        "turn_id",
    )

    def __init__(self, name: Party, partial_every: int) -> None:
        self.name = name
        self.segmenter = SpeechSegmenter()
        self.started_ms = 0
        self.turn_id = 0
        self.next_partial = partial_every
        self.partial_in_flight = False
        self.agreement = LocalAgreement()
        self.early: _EarlyFinal | None = None


class Transcription:
    def __init__(
        self,
        transcriber: Transcriber,
        workers: JobPool,
        work: SpeechWork,
        *,
        barge_in: BargeIn,
        send_to_agent: Callable[[str], None],
        partial_every_ms: int = DEFAULT_PARTIAL_EVERY_MS,
    ) -> None:
        self._transcriber = transcriber
        self._batch = getattr(transcriber, "transcribe_batch", None)
        # 0: no partial passes (a huge cadence never reached within max_frames).
        self._partial_every = partial_every_ms // FRAME_MS if partial_every_ms > 0 else 1 << 30
        self._workers = workers
        self._work = work
        self._barge_in = barge_in
        self._send = send_to_agent
        self.stt_mode = False
        self._caller = _Party("remote", self._partial_every)
        self._agent: _Party | None = _Party("local", self._partial_every)
        self._final_sent_turn = 0
        self._closed = False
        self.utterances_lost = 0

    @property
    def hears_agent(self) -> bool:
        """What is played to the caller is still wanted (the agent's own speech)."""
        return self._agent is not None

    def latest_partial(self) -> str:
        """Text of the last partial pass of the caller's current utterance ('' none yet)."""
        party = self._caller
        return party.agreement.latest if party.segmenter.active else ""

    def agent_reports_transcripts(self) -> None:
        """The agent sends its own ``transcript`` frames (or speaks text): stop hearing it."""
        self._agent = None

    # -- frames from the session -------------------------------------------------------
    def caller_frame(self, pcm: bytes) -> None:
        """One 20 ms frame of the caller, as PCM16."""
        party = self._caller
        self._feed(party, pcm)
        segmenter = party.segmenter
        if segmenter.silent_frames == EARLY_FINAL_AFTER_FRAMES and segmenter.confirmed:
            self._early_final(party)
        if self.stt_mode and segmenter.active:
            self._caller_speaking(party)

    def agent_frame(self, pcm: bytes | None) -> None:
        """What was played to the caller in this slot, as PCM16 (None: nothing)."""
        party = self._agent
        if party is None:
            return
        segmenter = party.segmenter
        event = segmenter.feed_silence() if pcm is None else segmenter.feed(pcm)
        if event is not None:
            self._segment_event(party, event)

    def _feed(self, party: _Party, pcm: bytes) -> None:
        event = party.segmenter.feed(pcm)
        if event is not None:
            self._segment_event(party, event)

    def _segment_event(self, party: _Party, event: SpeechStarted | Utterance) -> None:
        if isinstance(event, SpeechStarted):
            frames = party.segmenter.utterance_frames
            party.started_ms = max(0, self._work.now_ms() - frames * 20)
            party.turn_id += 1
            party.next_partial = self._partial_every
            party.agreement.reset()
            return
        early, party.early = party.early, None
        if early is not None and early.turn_id == party.turn_id and early.length == len(event.pcm):
            if early.text is None:
                early.utterance = event  # the pass is still running: it sends the final
            else:
                self._transcribed(party, early.text, early.turn_id, early.started_ms, final=True)
            return
        self._transcribe(party, event, party.turn_id, final=True)

    def _early_final(self, party: _Party) -> None:
        """Decode the utterance so far (up to its last voice) while the hang-over runs."""
        if self._batch is None or self._workers.queued:
            return  # others' finals are waiting: no work that may be thrown away
        segmenter, work = party.segmenter, self._work
        audio = segmenter.audio_so_far
        pcm = audio[: len(audio) - segmenter.silent_frames * FRAME_BYTES]
        early = party.early = _EarlyFinal(party.turn_id, len(pcm), party.started_ms)

        def done(text: object, error: BaseException | None, seconds: float) -> None:
            utterance = early.utterance
            if error is None and isinstance(text, str):
                early.text = text
                if utterance is not None:
                    self._transcribed(party, text, early.turn_id, early.started_ms, final=True)
            elif utterance is not None:  # it failed but was wanted: decode the utterance again
                self._transcribe(party, utterance, early.turn_id, final=True)
            work.job_done()

        request = TranscriptionRequest(pcm, party.agreement.prefix)
        if self._workers.submit_batched(URGENT, self._batch, request, done):
            work.job_started()
        else:
            party.early = None

    def _caller_speaking(self, party: _Party) -> None:
        segmenter = party.segmenter
        if segmenter.confirmed:
            self._barge_in.caller_turn(party.turn_id)
        if segmenter.silent_frames >= EARLY_FINAL_AFTER_FRAMES:
            return  # the caller has stopped: the early final, not partials, is what helps now
        if segmenter.utterance_frames >= party.next_partial:
            # Steady cadence; a pass still running makes this one wait for the next beat.
            party.next_partial = segmenter.utterance_frames + self._partial_every
            # Partials use only idle workers: a final never queues behind them.
            if not party.partial_in_flight and self._workers.idle:
                audio = segmenter.audio_so_far
                self._transcribe(party, Utterance(0, len(audio) // 16, audio), party.turn_id,
                                 final=False)  # fmt: skip

    # -- transcription ------------------------------------------------------------------
    def _transcribe(
        self, party: _Party, utterance: Utterance, turn_id: int, *, final: bool
    ) -> None:
        transcriber = self._transcriber
        work = self._work
        started_ms = party.started_ms
        seconds_of_audio = max(0.02, len(utterance.pcm) / 16000)
        agreement = party.agreement
        prefix = agreement.prefix if party.turn_id == turn_id else ""

        def done(text: object, error: BaseException | None, seconds: float) -> None:
            if not final:
                party.partial_in_flight = False
            if isinstance(error, JobShed):
                pass  # a partial dropped under overload: counted by the pool
            elif error is not None:
                metrics.SPEECH_FAILURES.labels("transcription").inc()
                log.warning("transcription failed: %s", error, extra={"call_id": work.call_id})
            elif isinstance(text, str):
                if final:
                    metrics.TRANSCRIPTION_RTF.observe(seconds / seconds_of_audio)
                elif turn_id == party.turn_id and party.segmenter.active:
                    agreement.partial(text)
                self._transcribed(party, text, turn_id, started_ms, final=final)
            work.job_done()

        priority = URGENT if final else BACKGROUND
        if self._batch is not None:
            request = TranscriptionRequest(utterance.pcm, prefix)
            submitted = self._workers.submit_batched(priority, self._batch, request, done)
        else:
            submitted = self._workers.submit(
                priority, lambda: transcriber.transcribe(utterance.pcm), done
            )
        if submitted:
            work.job_started()
            if not final:
                party.partial_in_flight = True
        elif final:
            self.utterances_lost += 1

    def _transcribed(
        self, party: _Party, text: str, turn_id: int, started_ms: int, *, final: bool
    ) -> None:
        text = text.strip()
        if party.name == "remote" and self.stt_mode and not self._closed:
            if final and text:
                self._final_sent_turn = max(self._final_sent_turn, turn_id)
                self._send(transcript_frame(text, is_final=True, turn_id=turn_id))
            elif not final and text and turn_id > self._final_sent_turn:
                self._send(transcript_frame(text, is_final=False, turn_id=turn_id))
        if final and text:
            metrics.TRANSCRIPTS.labels(party.name, "engine").inc()
            self._work.store(party.name, text, started_ms)

    def close(self) -> None:
        """The call ended: transcribe what was still being said."""
        if not self._closed:
            self._closed = True
            for party in (self._caller, self._agent):
                if party is not None:
                    utterance = party.segmenter.flush()
                    if utterance is not None:
                        self._transcribe(party, utterance, party.turn_id, final=True)
