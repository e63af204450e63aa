"""Transcription: both parties' speech cut into utterances and transcribed off the loop.

The session feeds every 20 ms frame of each party (caller frames as they
arrive, what was played to the caller on the tick) to a ``SpeechSegmenter``;
only whole utterances leave the event loop, as jobs for the transcription
workers. What comes back becomes transcript segments (stored, and announced
as ``transcript.segment``) and, in speech-to-text mode, ``transcript`` frames
to the agent: partials about once a second while the caller speaks (only
when a worker is idle — they are a courtesy), then one final per turn. While
the caller speaks in speech-to-text mode, ``BargeIn`` decides whether the
agent is interrupted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trunkline import metrics
from trunkline.agent.inkbox_protocol import transcript_frame
from trunkline.media.barge_in import BargeIn
from trunkline.media.speech_work import JobPool, Party, SpeechWork
from trunkline.speech.segmenter import SpeechSegmenter, SpeechStarted, Utterance
from trunkline.speech.transcriber import Transcriber
from trunkline.speech.workers import BACKGROUND, URGENT

log = logging.getLogger("trunkline.speech")

PARTIAL_EVERY_FRAMES = 50  # a partial transcript about once a second of speech


class _Party:
    """One side of the call: its segmenter and where its current utterance began."""

    __slots__ = ("name", "next_partial", "segmenter", "started_ms", "turn_id")

    def __init__(self, name: Party) -> None:
        self.name = name
        self.segmenter = SpeechSegmenter()
        self.started_ms = 0
        self.turn_id = 0
        self.next_partial = PARTIAL_EVERY_FRAMES


class Transcription:
    def __init__(
        self,
        transcriber: Transcriber,
        workers: JobPool,
        work: SpeechWork,
        *,
        barge_in: BargeIn,
        send_to_agent: Callable[[str], None],
    ) -> None:
        self._transcriber = transcriber
        self._workers = workers
        self._work = work
        self._barge_in = barge_in
        self._send = send_to_agent
        self.stt_mode = False
        self._caller = _Party("remote")
        self._agent: _Party | None = _Party("local")
        self._final_sent_turn = 0
        self._closed = False
        self.utterances_lost = 0

    @property
    def hears_agent(self) -> bool:
        """What is played to the caller is still wanted (the agent's own speech)."""
        return self._agent is not None

    def agent_reports_transcripts(self) -> None:
        """The agent sends its own ``transcript`` frames (or speaks text): stop hearing it."""
        self._agent = None

    # -- frames from the session -------------------------------------------------------
    def caller_frame(self, pcm: bytes) -> None:
        """One 20 ms frame of the caller, as PCM16."""
        party = self._caller
        self._feed(party, pcm)
        if self.stt_mode and party.segmenter.active:
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
            party.next_partial = PARTIAL_EVERY_FRAMES
            return
        self._transcribe(party, event, party.turn_id, final=True)

    def _caller_speaking(self, party: _Party) -> None:
        segmenter = party.segmenter
        if segmenter.confirmed:
            self._barge_in.caller_turn(party.turn_id)
        if segmenter.utterance_frames >= party.next_partial:
            party.next_partial = segmenter.utterance_frames + PARTIAL_EVERY_FRAMES
            if self._workers.idle:
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

        def done(text: object, error: BaseException | None, seconds: float) -> None:
            if error is not None:
                metrics.SPEECH_FAILURES.labels("transcription").inc()
                log.warning("transcription failed: %s", error, extra={"call_id": work.call_id})
            elif isinstance(text, str):
                if final:
                    metrics.TRANSCRIPTION_RTF.observe(seconds / seconds_of_audio)
                self._transcribed(party, text, turn_id, started_ms, final=final)
            work.job_done()

        submitted = self._workers.submit(
            URGENT if final else BACKGROUND, lambda: transcriber.transcribe(utterance.pcm), done
        )
        if submitted:
            work.job_started()
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
