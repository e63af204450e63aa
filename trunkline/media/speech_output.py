"""Speech output: the agent's text (and voicemail greetings) spoken to the caller.

Text-to-speech mode: the agent's ``text`` deltas are cut into pieces at
sentence ends (``SentenceSplitter``) and synthesized one piece at a time per
call while the agent is still streaming, so the first audio does not wait for
``done``. Marks the agent sends between texts wait in the same queue, so a
mark is echoed only once the speech before it has been played. Each
response's whole text is stored as a ``local`` transcript segment.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from trunkline import metrics
from trunkline.media.playout import Playout
from trunkline.media.speech_work import JobPool, Party, SpeechWork
from trunkline.speech.sentences import SentenceSplitter
from trunkline.speech.synthesizer import Synthesizer
from trunkline.speech.workers import NORMAL

log = logging.getLogger("trunkline.speech")

MAX_PENDING_SPEECH = 128  # pieces of agent text (and marks) waiting to be spoken


class SpeechOutput:
    def __init__(
        self,
        synthesizer: Synthesizer | None,
        workers: JobPool,
        work: SpeechWork,
        *,
        playout: Playout,
        play: Callable[[bytes], None],
    ) -> None:
        self._synthesizer = synthesizer
        self._workers = workers
        self._work = work
        self._playout = playout
        self._play = play
        self.tts_mode = False
        self._splitter = SentenceSplitter()
        self._pending: deque[tuple[str, str | bytes]] = deque()  # say/mark/tone
        self._speaking = False  # a piece is being synthesized
        self._generation = 0  # bumped when pending speech is dropped: older results are too
        self._response_text: list[str] = []
        self._response_started: float | None = None
        self._response_ms = 0
        self._first_audio_due: float | None = None  # when the response's first delta came
        self._closed = False
        self.first_audio_seconds: deque[float] = deque(maxlen=16)
        self.speech_lost = 0

    @property
    def can_speak(self) -> bool:
        return self._synthesizer is not None

    @property
    def speaking(self) -> bool:
        """Speech is queued or being synthesized (the voicemail beep waits for it)."""
        return self._speaking or bool(self._pending)

    def agent_text(self, delta: str, done: bool) -> bool:
        """A ``text`` frame from the agent; False when it cannot be spoken (counted upstream)."""
        if not self.tts_mode or self._synthesizer is None:
            return False
        if self._response_started is None and (delta.strip() or done):
            self._response_started = time.perf_counter()
            self._response_ms = self._work.now_ms()
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
        if self._synthesizer is not None and text.strip():
            self._work.store(party, text, self._work.now_ms())
            self._queue(("say", text))
        if then:
            self._queue(("tone", then))
        self._next_piece()

    def clear(self) -> None:
        """The agent sent ``clear``: pending speech goes with the queued audio."""
        if self._pending or self._speaking:
            self.drop_pending()

    def agent_mark(self, name: str) -> bool:
        """A mark while speech is pending waits behind it; False: the playout takes it now."""
        if not (self._pending or self._speaking):
            return False
        self._queue(("mark", name))
        return True

    def drop_pending(self) -> None:
        """Drop queued and in-flight speech (barge-in, ``clear``); its marks echo at once."""
        self._generation += 1
        for kind, value in self._pending:
            if kind == "mark" and isinstance(value, str):
                self._playout.mark(value)  # echoed at once: nothing is queued before it
        self._pending.clear()
        self._speaking = False
        self._end_response()

    def close(self) -> None:
        """The call ended: nothing more is spoken; the response so far is stored."""
        if not self._closed:
            self._closed = True
            self._generation += 1
            self._pending.clear()
            self._end_response()

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
            self._work.store("local", text, self._response_ms)

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
        synthesizer = self._synthesizer
        assert synthesizer is not None
        generation = self._generation
        work = self._work

        def done(audio: object, error: BaseException | None, seconds: float) -> None:
            if generation == self._generation:
                self._speaking = False
                if error is not None:
                    metrics.SPEECH_FAILURES.labels("synthesis").inc()
                    log.warning("speech failed: %s", error, extra={"call_id": work.call_id})
                elif isinstance(audio, bytes) and audio and not self._closed:
                    self._played_first_audio()
                    self._play(audio)
                self._next_piece()
            work.job_done()

        if self._workers.submit(NORMAL, lambda: b"".join(synthesizer.synthesize(text)), done):
            work.job_started()
            self._speaking = True
        else:
            self.speech_lost += 1

    def _played_first_audio(self) -> None:
        if self._first_audio_due is not None:
            metrics.TTS_FIRST_AUDIO.observe(time.perf_counter() - self._first_audio_due)
            self.first_audio_seconds.append(time.perf_counter() - self._first_audio_due)
        self._first_audio_due = None
