"""One call's speech: segment both parties, transcribe off the loop, speak the agent's text.

The bridge feeds every 20 ms frame of each party (caller frames as they
arrive, agent frames on the tick) to a ``SpeechSegmenter``; only whole
utterances leave the event loop, as jobs for the transcription workers. What
comes back becomes transcript segments (stored, and announced as
``transcript.segment``) and, in speech-to-text mode, ``transcript`` frames to
the agent: partials about once a second while the caller speaks (only when a
worker is idle — they are a courtesy), then one final per turn.

Text-to-speech mode: the agent's ``text`` deltas are cut into pieces at
sentence ends (``SentenceSplitter``) and synthesized one piece at a time per
call while the agent is still streaming, so the first audio does not wait for
``done``. Marks the agent sends between texts wait in the same queue, so a
mark is echoed only once the speech before it has been played.

Barge-in (speech-to-text mode): when the caller has spoken enough to count as
a turn while agent audio is queued or playing, queued audio and pending speech
are dropped and the agent gets ``barge_in``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal

from trunkline import metrics
from trunkline.agent.inkbox_protocol import barge_in_frame, transcript_frame
from trunkline.media.playout import Playout
from trunkline.speech.engines import SpeechEngines
from trunkline.speech.segmenter import SpeechSegmenter, SpeechStarted, Utterance
from trunkline.speech.sentences import SentenceSplitter
from trunkline.speech.workers import BACKGROUND, NORMAL, URGENT

log = logging.getLogger("trunkline.speech")

Party = Literal["local", "remote", "system"]
StoreSegment = Callable[[Party, str, int], Awaitable[None]]
PARTIAL_EVERY_FRAMES = 50  # a partial transcript about once a second of speech
MAX_PENDING_SPEECH = 128  # pieces of agent text (and marks) waiting to be spoken


class _Party:
    """One side of the call: its segmenter and where its current utterance began."""

    __slots__ = ("name", "next_partial", "segmenter", "started_ms", "turn_id")

    def __init__(self, name: Party) -> None:
        self.name = name
        self.segmenter = SpeechSegmenter()
        self.started_ms = 0
        self.turn_id = 0
        self.next_partial = PARTIAL_EVERY_FRAMES


class CallSpeech:
    def __init__(
        self,
        call_id: str,
        engines: SpeechEngines,
        *,
        playout: Playout,
        play: Callable[[bytes], None],
        send_to_agent: Callable[[str], None],
        store_segment: StoreSegment,
        transcribe_caller: bool = True,
        transcribe_agent: bool = True,
    ) -> None:
        self.call_id = call_id
        self._engines = engines
        self._playout = playout
        self._play = play
        self._send = send_to_agent
        self._store = store_segment
        self._started = time.monotonic()
        self.stt_mode = False
        self.tts_mode = False
        self._caller = _Party("remote") if transcribe_caller and engines.transcriber else None
        self._agent = _Party("local") if transcribe_agent and engines.transcriber else None
        self._barged_turn = 0
        self._final_sent_turn = 0
        # text-to-speech
        self._splitter = SentenceSplitter()
        self._pending: deque[tuple[str, str | bytes]] = deque()  # say/mark/tone
        self._speaking = False  # a piece is being synthesized
        self._generation = 0  # bumped by barge-in: results of older pieces are dropped
        self._response_text: list[str] = []
        self._response_started: float | None = None
        self._response_ms = 0
        self._first_audio_due: float | None = None  # when the response's first delta came
        # bookkeeping for close()
        self._outstanding = 0
        self._closed = False
        self._drained: asyncio.Future[None] | None = None
        self.first_audio_seconds: deque[float] = deque(maxlen=16)
        self.utterances_lost = 0
        self.speech_lost = 0

    @property
    def can_speak(self) -> bool:
        return self._engines.synthesizer is not None

    @property
    def can_transcribe(self) -> bool:
        return self._engines.transcriber is not None

    def now_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    # -- frames from the bridge ----------------------------------------------------
    @property
    def hears_caller(self) -> bool:
        """The caller's frames are wanted (as PCM16)."""
        return self._caller is not None

    @property
    def hears_agent(self) -> bool:
        return self._agent is not None and not self.tts_mode

    def caller_frame(self, pcm: bytes) -> None:
        party = self._caller
        if party is None:
            return
        self._feed(party, pcm)
        if self.stt_mode and party.segmenter.active:
            self._caller_speaking(party)

    def agent_frame(self, pcm: bytes | None) -> None:
        """What was played to the caller in this slot, as PCM16 (None: nothing)."""
        party = self._agent
        if party is None or self.tts_mode:
            return  # in text-to-speech mode the agent's words are known: they are its text
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
            party.started_ms = max(0, self.now_ms() - frames * 20)
            party.turn_id += 1
            party.next_partial = PARTIAL_EVERY_FRAMES
            return
        self._transcribe(party, event, party.turn_id, final=True)

    def _caller_speaking(self, party: _Party) -> None:
        segmenter = party.segmenter
        if (
            segmenter.confirmed
            and self._barged_turn != party.turn_id
            and (self._playout.backlog_frames > 0 or self._speaking or self._pending)
        ):
            self._barge_in(party.turn_id)
        if segmenter.utterance_frames >= party.next_partial:
            party.next_partial = segmenter.utterance_frames + PARTIAL_EVERY_FRAMES
            if self._engines.transcription.idle:
                audio = segmenter.audio_so_far
                self._transcribe(party, Utterance(0, len(audio) // 16, audio), party.turn_id,
                                 final=False)  # fmt: skip

    # -- transcription ------------------------------------------------------------------
    def _transcribe(
        self, party: _Party, utterance: Utterance, turn_id: int, *, final: bool
    ) -> None:
        transcriber = self._engines.transcriber
        assert transcriber is not None
        started_ms = party.started_ms
        seconds_of_audio = max(0.02, len(utterance.pcm) / 16000)

        def done(text: object, error: BaseException | None, seconds: float) -> None:
            self._outstanding -= 1
            if error is not None:
                metrics.SPEECH_FAILURES.labels("transcription").inc()
                log.warning("transcription failed: %s", error, extra={"call_id": self.call_id})
            elif isinstance(text, str):
                if final:
                    metrics.TRANSCRIPTION_RTF.observe(seconds / seconds_of_audio)
                self._transcribed(party, text, turn_id, started_ms, final=final)
            self._maybe_drained()

        submitted = self._engines.transcription.submit(
            URGENT if final else BACKGROUND, lambda: transcriber.transcribe(utterance.pcm), done
        )
        if submitted:
            self._outstanding += 1
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
            self._write(party.name, text, started_ms)

    def _write(self, party: Party, text: str, ts_ms: int) -> None:
        self._outstanding += 1
        task = asyncio.ensure_future(self._store(party, text, ts_ms))

        def written(task: asyncio.Future[None]) -> None:
            self._outstanding -= 1
            if not task.cancelled() and task.exception() is not None:
                log.error("transcript segment not stored: %s", task.exception(),
                          extra={"call_id": self.call_id})  # fmt: skip
            self._maybe_drained()

        task.add_done_callback(written)

    def agent_reports_transcripts(self) -> None:
        """The agent sends its own ``transcript`` frames: stop transcribing its audio."""
        self._agent = None

    # -- barge-in ------------------------------------------------------------------------
    def _barge_in(self, turn_id: int) -> None:
        self._barged_turn = turn_id
        tts_interrupted = (
            self._speaking
            or bool(self._pending)
            or (self.tts_mode and self._playout.backlog_frames > 0)
        )
        self._drop_pending_speech()
        self._playout.clear()
        self._send(barge_in_frame("", tts_interrupted=tts_interrupted, turn_id=turn_id))

    def _drop_pending_speech(self) -> None:
        self._generation += 1
        for kind, value in self._pending:
            if kind == "mark" and isinstance(value, str):
                self._playout.mark(value)  # echoed at once: nothing is queued before it
        self._pending.clear()
        self._speaking = False
        self._end_response()

    # -- text to speech ---------------------------------------------------------------------
    def agent_text(self, delta: str, done: bool) -> bool:
        """A ``text`` frame from the agent; False when it cannot be spoken (counted upstream)."""
        if not self.tts_mode or self._engines.synthesizer is None:
            return False
        if self._response_started is None and (delta.strip() or done):
            self._response_started = time.perf_counter()
            self._response_ms = self.now_ms()
            if not self.speaking:
                self._first_audio_due = self._response_started
        if delta:
            self._response_text.append(delta)
        pieces = self._splitter.push(delta)
        if done:
            pieces += self._splitter.finish()
        for piece in pieces:
            self._queue(("say", piece))
        if done:
            self._end_response()
        self._next_piece()
        return True

    def say(self, text: str, *, party: Party = "system", then: bytes = b"") -> None:
        """Speak ``text`` (a voicemail greeting), stored as a ``party`` segment, then play ``then``."""
        if self._engines.synthesizer is not None and text.strip():
            self._write(party, text, self.now_ms())
            self._queue(("say", text))
        if then:
            self._queue(("tone", then))
        self._next_piece()

    def clear(self) -> None:
        """The agent sent ``clear``: pending speech goes with the queued audio."""
        if self._pending or self._speaking:
            self._drop_pending_speech()

    def agent_mark(self, name: str) -> bool:
        """A mark while speech is pending waits behind it; False: the playout takes it now."""
        if not (self._pending or self._speaking):
            return False
        self._queue(("mark", name))
        return True

    def _queue(self, item: tuple[str, str | bytes]) -> None:
        if len(self._pending) >= MAX_PENDING_SPEECH:
            self.speech_lost += 1
            return
        self._pending.append(item)

    def _end_response(self) -> None:
        text = "".join(self._response_text).strip()
        self._response_text.clear()
        self._response_started = None
        if text:
            metrics.TRANSCRIPTS.labels("local", "speech").inc()
            self._write("local", text, self._response_ms)

    def _next_piece(self) -> None:
        while self._pending and not self._speaking:
            kind, value = self._pending.popleft()
            if isinstance(value, bytes):
                self._play(value)
            elif kind == "mark":
                self._playout.mark(value)
            else:
                self._synthesize(value)

    def _synthesize(self, text: str) -> None:
        synthesizer = self._engines.synthesizer
        assert synthesizer is not None
        generation = self._generation

        def done(audio: object, error: BaseException | None, seconds: float) -> None:
            self._outstanding -= 1
            if generation == self._generation:
                self._speaking = False
                if error is not None:
                    metrics.SPEECH_FAILURES.labels("synthesis").inc()
                    log.warning("speech failed: %s", error, extra={"call_id": self.call_id})
                elif isinstance(audio, bytes) and audio and not self._closed:
                    self._played_first_audio()
                    self._play(audio)
                self._next_piece()
            self._maybe_drained()

        if self._engines.synthesis.submit(
            NORMAL, lambda: b"".join(synthesizer.synthesize(text)), done
        ):
            self._outstanding += 1
            self._speaking = True
        else:
            self.speech_lost += 1

    def _played_first_audio(self) -> None:
        if self._first_audio_due is not None:
            metrics.TTS_FIRST_AUDIO.observe(time.perf_counter() - self._first_audio_due)
            self.first_audio_seconds.append(time.perf_counter() - self._first_audio_due)
        self._first_audio_due = None

    @property
    def speaking(self) -> bool:
        """Speech is queued or being synthesized (the voicemail beep waits for it)."""
        return self._speaking or bool(self._pending)

    # -- end of call -----------------------------------------------------------------------
    def close(self) -> asyncio.Future[None]:
        """The call ended: transcribe what was still being said; resolves when all is stored."""
        if not self._closed:
            self._closed = True
            self._generation += 1
            self._pending.clear()
            for party in (self._caller, self._agent):
                if party is not None:
                    utterance = party.segmenter.flush()
                    if utterance is not None:
                        self._transcribe(party, utterance, party.turn_id, final=True)
            self._end_response()
            self._drained = asyncio.get_running_loop().create_future()
            self._maybe_drained()
        assert self._drained is not None
        return self._drained

    def _maybe_drained(self) -> None:
        if self._drained is not None and self._outstanding <= 0 and not self._drained.done():
            self._drained.set_result(None)
