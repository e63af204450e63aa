"""Transcription: both parties' speech cut into utterances and transcribed off the loop.

The session feeds every 20 ms frame of each party (caller frames as they
arrive, what was played to the caller on the tick) to a ``SpeechSegmenter``;
only whole utterances leave the event loop, as jobs for the transcription
workers. What comes back becomes transcript segments (stored, and announced
as ``transcript.segment``) and, in speech-to-text mode, ``transcript`` frames
to the agent: partials at a steady cadence while the caller speaks, then one
final per turn.

Incremental decoding (speech-to-text mode): every ``partial_every_ms`` of
caller speech the audio so far is queued as a background job when the workers
are idle (at most one in flight per call); ``LocalAgreement`` keeps the words
two passes agreed on, and later passes of the turn — the final one included —
get them as their decoder prefix (with an engine that batches), so at the end
of speech only the tail is decoded. Partials are the first work shed under
overload; finals are not. ``latest_partial`` is the text of the last partial
pass of the caller's current utterance.

The caller's segmenter ends a turn with an adaptive hang-over
(``speech.turns``) and reads the caller's partial transcript through
``_Party.partial``: the latest decoded text, counted only while it covers the
utterance up to its last voiced frame. In speech-to-text mode a pause of
``SPECULATE_AFTER_MS`` sends the utterance so far for decoding as soon as a
worker is idle (at once, or later in the same pause when a partial pass was
still running): its text is a partial transcript (sent to the agent like the
others) that tells the segmenter whether the sentence is complete, and when
the turn ends on exactly that audio it is the final transcript — the
decoding started while the hang-over ran.

In speech-to-text mode an ``EchoGuard`` hears what was played to the caller
and judges each voiced caller frame: only frames it does not explain as echo
of the agent's own audio count as the caller's voice. ``BargeIn`` fires once
``BARGE_IN_FRAMES`` of them are heard in a turn, and a caller utterance made
(almost) only of echo is dropped, not transcribed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trunkline import metrics
from trunkline.agent.inkbox_protocol import transcript_frame
from trunkline.media.barge_in import BargeIn
from trunkline.media.speech_work import JobPool, Party, SpeechWork
from trunkline.speech.echo import EchoGuard
from trunkline.speech.incremental import LocalAgreement
from trunkline.speech.neural_vad import SileroModel, SileroStream
from trunkline.speech.segmenter import FRAME_MS, SpeechSegmenter, SpeechStarted, Utterance
from trunkline.speech.transcriber import Transcriber, TranscriptionRequest
from trunkline.speech.turns import EndOfTurn
from trunkline.speech.workers import BACKGROUND, URGENT, JobShed

log = logging.getLogger("trunkline.speech")

DEFAULT_PARTIAL_EVERY_MS = 400
SPECULATE_AFTER_MS = 160  # a pause this long sends the utterance so far for decoding
BARGE_IN_FRAMES = 8  # voiced caller frames not explained by echo that interrupt the agent
ECHO_SHARE = 0.8  # an utterance with at least this share of its voice judged echo is dropped


class _Party:
    """One side of the call: its segmenter, where its utterance began, what is known of it."""

    __slots__ = (
        "agreement",
        "decoded_ahead",
        "echo_voice",
        "final_from_decode",
        "name",
        "next_partial",
        "own_voice",
        "partial_covers",
        "partial_in_flight",
        "partial_text",
        "segmenter",
        "speculating",
        "speculating_turn",
        "started_ms",
        "turn_id",
    )

    def __init__(
        self, name: Party, partial_every: int, segmenter: SpeechSegmenter | None = None
    ) -> None:
        self.name = name
        self.segmenter = segmenter or SpeechSegmenter()
        self.started_ms = 0
        self.turn_id = 0
        self.next_partial = partial_every
        self.partial_in_flight = False
        self.agreement = LocalAgreement()
        self.own_voice = 0  # voiced frames of this turn not explained as echo
        self.echo_voice = 0  # voiced frames of this turn explained as echo
        self.partial_text: str | None = None
        self.partial_covers = -1  # the utterance's voiced bytes the partial text was decoded from
        self.speculating = -1  # voiced bytes being decoded ahead of the turn's end (-1: none)
        self.speculating_turn = 0
        self.decoded_ahead = -1  # voiced bytes the last decoding ahead was sent for
        # the turn ended on the audio being decoded ahead: its (turn id, start) await the text
        self.final_from_decode: tuple[int, int] | None = None

    def partial(self) -> str | None:
        """The partial transcript, if it was decoded from the utterance as it stands."""
        if self.partial_covers == self.segmenter.voiced_bytes:
            return self.partial_text
        return None


class Transcription:
    def __init__(
        self,
        transcriber: Transcriber,
        workers: JobPool,
        work: SpeechWork,
        *,
        barge_in: BargeIn,
        send_to_agent: Callable[[str], None],
        neural_vad: SileroModel | None = None,
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
        self._caller.segmenter = SpeechSegmenter(
            neural=SileroStream(neural_vad) if neural_vad is not None else None,
            turns=EndOfTurn(comma_trails=getattr(transcriber, "comma_trails", True)),
            partial=self._caller.partial,
        )
        self._agent: _Party | None = _Party("local", self._partial_every)
        self._echo = EchoGuard()
        self._final_sent_turn = 0
        self._closed = False
        self.utterances_lost = 0
        self.echo_utterances_dropped = 0

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

    @property
    def echo(self) -> EchoGuard:
        return self._echo

    # -- frames from the session -------------------------------------------------------
    def caller_frame(self, pcm: bytes) -> None:
        """One 20 ms frame of the caller, as PCM16."""
        party = self._caller
        self._feed(party, pcm)
        if self.stt_mode and party.segmenter.active:
            self._caller_speaking(party, pcm)

    def played_frame(self, pcm: bytes | None) -> None:
        """What was played to the caller in this slot (the echo guard's reference)."""
        self._echo.played(pcm)

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
            party.own_voice = party.echo_voice = 0
            party.partial_text, party.partial_covers = None, -1
            party.decoded_ahead = -1
            return
        if (
            party.echo_voice
            and party.own_voice < BARGE_IN_FRAMES
            and (party.echo_voice >= ECHO_SHARE * (party.echo_voice + party.own_voice))
        ):
            self.echo_utterances_dropped += 1  # the agent's own words, heard back
            metrics.ECHO_UTTERANCES_DROPPED.inc()
            return
        if party.speculating == len(event.pcm) and party.speculating_turn == party.turn_id:
            party.final_from_decode = (party.turn_id, party.started_ms)  # already being decoded
            return
        if party.partial_covers == len(event.pcm) and party.partial_text is not None:
            self._transcribed(party, party.partial_text, party.turn_id, party.started_ms,
                              final=True)  # fmt: skip
            return
        self._transcribe(party, event, party.turn_id, final=True)

    def _caller_speaking(self, party: _Party, pcm: bytes) -> None:
        segmenter = party.segmenter
        if segmenter.frame_voiced:
            if self._echo.is_echo(pcm):
                party.echo_voice += 1
                metrics.BARGE_IN_ECHO_FRAMES.inc()
            else:
                party.own_voice += 1
        if party.own_voice >= BARGE_IN_FRAMES and segmenter.confirmed:
            self._barge_in.caller_turn(party.turn_id)
        if (
            segmenter.silence_ms >= SPECULATE_AFTER_MS
            and party.own_voice >= BARGE_IN_FRAMES
            and party.speculating < 0
            and party.decoded_ahead != segmenter.voiced_bytes  # once per pause
            and self._workers.idle
        ):
            self._decode_ahead(party)
        if party.own_voice < BARGE_IN_FRAMES:
            return  # no partials of what may be echo
        if segmenter.utterance_frames >= party.next_partial and segmenter.frame_voiced:
            # Steady cadence; a pass still running makes this one wait for the next beat.
            party.next_partial = segmenter.utterance_frames + self._partial_every
            # Partials use only idle workers: a final never queues behind them.
            if not party.partial_in_flight and self._workers.idle:
                audio = segmenter.audio_so_far
                self._transcribe(party, Utterance(0, len(audio) // 16, audio), party.turn_id,
                                 final=False)  # fmt: skip

    def _decode_ahead(self, party: _Party) -> None:
        """Decode the utterance as it stands: its partial text, and its final if it ends so."""
        audio = party.segmenter.voiced_audio
        covers = len(audio)
        turn_id = party.turn_id
        work = self._work

        def done(text: object, error: BaseException | None, seconds: float) -> None:
            party.speculating = -1
            waiting, party.final_from_decode = party.final_from_decode, None
            if error is not None:
                metrics.SPEECH_FAILURES.labels("transcription").inc()
                log.warning("transcription failed: %s", error, extra={"call_id": work.call_id})
                if waiting is not None:  # the turn's final is decoded once more, as usual
                    again = Utterance(0, len(audio) // 16, audio)
                    self._transcribe(party, again, waiting[0], final=True, started_ms=waiting[1])
            elif isinstance(text, str):
                if waiting is not None:
                    metrics.TRANSCRIPTION_RTF.observe(seconds / max(0.02, covers / 16000))
                    self._transcribed(party, text, waiting[0], waiting[1], final=True)
                else:  # a partial transcript, for the agent and the end-of-turn rule
                    self._transcribed(party, text, turn_id, 0, final=False)
                    if party.turn_id == turn_id and party.segmenter.voiced_bytes == covers:
                        party.partial_text, party.partial_covers = text.strip(), covers
            work.job_done()

        if self._submit(URGENT, audio, party.agreement.prefix, done):
            work.job_started()
            party.speculating, party.speculating_turn = covers, turn_id
            party.decoded_ahead = covers

    # -- transcription ------------------------------------------------------------------
    def _transcribe(
        self,
        party: _Party,
        utterance: Utterance,
        turn_id: int,
        *,
        final: bool,
        started_ms: int | None = None,
    ) -> None:
        work = self._work
        started_ms = party.started_ms if started_ms is None else started_ms
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

        submitted = self._submit(URGENT if final else BACKGROUND, utterance.pcm, prefix, done)
        if submitted:
            work.job_started()
            if not final:
                party.partial_in_flight = True
        elif final:
            self.utterances_lost += 1

    def _submit(
        self,
        priority: int,
        pcm: bytes,
        prefix: str,
        done: Callable[[object, BaseException | None, float], None],
    ) -> bool:
        """Queue one decoding: batched, with the agreed words as its prefix, when the engine
        batches; else on its own."""
        if self._batch is not None:
            request = TranscriptionRequest(pcm, prefix)
            return self._workers.submit_batched(priority, self._batch, request, done)
        transcriber = self._transcriber
        return self._workers.submit(priority, lambda: transcriber.transcribe(pcm), done)

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
