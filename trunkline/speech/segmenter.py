"""Voice activity detection: one party's 20 ms frames in, utterances with offsets out (sans I/O).

Two stages keep it cheap enough for hundreds of calls: an energy gate
(``audioop.rms``, about a microsecond per frame) classifies quiet frames as
silence outright, and only frames above it go to a VAD — the neural Silero
model (``neural_vad.SileroStream``) when one is given, otherwise WebRTC's VAD
(a GMM over sub-band energies, some tens of microseconds per frame). While
an utterance is under way the neural VAD hears every frame, pauses included,
so its state follows them; between utterances only frames above the gate.
Its probability has two thresholds: ``START_PROBABILITY`` to count a frame
as voice, the lower ``KEEP_PROBABILITY`` to keep an utterance going, so a
hesitant syllable does not start the hang-over. With an end-of-turn
policy, an unvoiced frame in a pause at ``FAINT_RMS`` or louder — a word's
final fricative (often under the gate), or the first frames of speech
resuming, which the neural model needs a window or two to be sure of —
neither ends the pause nor lengthens it, for at most ``HOLD_FRAMES`` frames
per pause.

A talk spurt starts when ``start_frames`` of the last ``start_window`` frames
are voiced and ends after a hang-over of unvoiced frames in a row: a fixed
``end_frames``, or, with an ``EndOfTurn`` policy, as long as the policy says
given the latest partial transcript (``partial``) and the pauses the party
made earlier. The utterance keeps a short pre-roll so the first syllable is
not clipped. Spurts with too little voice (clicks, a cough) are discarded,
and a monologue is cut at ``max_frames`` so no buffer grows without bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import webrtcvad

from trunkline.codecs.g711 import audioop
from trunkline.speech.neural_vad import SileroStream
from trunkline.speech.turns import EndOfTurn

FRAME_MS = 20
FRAME_BYTES = 320  # 20 ms of PCM16 at 8 kHz
SILENCE_RMS = 200  # about -44 dBFS: below this a frame is silence without asking the VAD
START_PROBABILITY = 0.5  # neural VAD: a frame at or above this is voice
KEEP_PROBABILITY = 0.35  # neural VAD: within an utterance, voice down to this
FAINT_RMS = 100  # about -50 dBFS: an unvoiced frame this loud in a pause may still be speech
HOLD_FRAMES = 5  # such frames: at most this many per pause are not counted as silence
NEURAL_RESET_FRAMES = 10  # the neural VAD starts afresh after this long unheard
SILENT_FRAME = bytes(FRAME_BYTES)

Partial = Callable[[], str | None]  # the latest partial transcript of the utterance so far


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    start_ms: int  # offset of the utterance's first frame (pre-roll included)


@dataclass(frozen=True, slots=True)
class Utterance:
    start_ms: int
    end_ms: int  # end of the last voiced frame
    pcm: bytes  # PCM16 8 kHz, pre-roll to the last voiced frame

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


SegmentEvent = SpeechStarted | Utterance


class SpeechSegmenter:
    """Feed every 20 ms frame of one party, in order; events come back from ``feed``."""

    __slots__ = (
        "_buffer",
        "_end_frames",
        "_frame_index",
        "_held",
        "_uncertain",
        "_last_voiced",
        "_max_frames",
        "_min_voiced",
        "_neural",
        "_neural_fed",
        "_partial",
        "_preroll",
        "_recent",
        "_start_frames",
        "_start_index",
        "_turns",
        "_unvoiced_run",
        "_vad",
        "_voiced_count",
        "active",
        "frame_voiced",
        "vad_calls",
    )

    def __init__(
        self,
        *,
        aggressiveness: int = 2,
        start_frames: int = 3,
        start_window: int = 5,
        end_frames: int = 25,
        preroll_frames: int = 10,
        min_voiced_frames: int = 8,
        max_frames: int = 1000,
        neural: SileroStream | None = None,
        turns: EndOfTurn | None = None,
        partial: Partial | None = None,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._neural = neural
        self._neural_fed = -NEURAL_RESET_FRAMES  # index of the last frame the neural VAD heard
        self._uncertain = False  # the last frame was loud, yet not voice to the neural VAD
        self._held = 0  # uncertain frames in the current pause
        self._turns = turns
        self._partial = partial
        self._start_frames = start_frames
        self._recent: deque[bool] = deque(maxlen=start_window)
        self._end_frames = end_frames
        self._preroll: deque[bytes] = deque(maxlen=preroll_frames + start_window)
        self._min_voiced = min_voiced_frames
        self._max_frames = max_frames
        self._frame_index = 0
        self._buffer = bytearray()
        self._start_index = 0
        self._last_voiced = 0
        self._voiced_count = 0
        self._unvoiced_run = 0
        self.active = False
        self.frame_voiced = False  # the last frame fed was voice
        self.vad_calls = 0

    @property
    def position_ms(self) -> int:
        return self._frame_index * FRAME_MS

    @property
    def confirmed(self) -> bool:
        """An utterance is under way and already holds enough voice to be kept."""
        return self.active and self._voiced_count >= self._min_voiced

    @property
    def audio_so_far(self) -> bytes:
        """The current utterance's audio (empty between utterances)."""
        return bytes(self._buffer) if self.active else b""

    @property
    def voiced_bytes(self) -> int:
        """Length of the current utterance's audio up to its last voiced frame (0 between)."""
        return (self._last_voiced + 1 - self._start_index) * FRAME_BYTES if self.active else 0

    @property
    def voiced_audio(self) -> bytes:
        """The current utterance's audio up to its last voiced frame: what it ends as if now."""
        return bytes(self._buffer[: self.voiced_bytes]) if self.active else b""

    @property
    def utterance_frames(self) -> int:
        return len(self._buffer) // FRAME_BYTES if self.active else 0

    @property
    def silence_ms(self) -> int:
        """How long the utterance under way has been without voice (0 between utterances)."""
        return self._unvoiced_run * FRAME_MS if self.active else 0

    @property
    def uses_neural_vad(self) -> bool:
        return self._neural is not None

    def _voiced(self, pcm: bytes) -> bool:
        whole = len(pcm) == FRAME_BYTES
        level = audioop.rms(pcm, 2) if whole else 0
        loud = level >= SILENCE_RMS
        if self.active and self._turns is not None and level >= FAINT_RMS:
            self._uncertain = True  # until the VAD says voice: a fricative, a breath
        neural = self._neural
        if neural is None:
            if not loud:
                return False
            self.vad_calls += 1
            voiced = bool(self._vad.is_speech(pcm, 8000))
        else:
            if not (loud or self.active):
                return False
            if self._frame_index - self._neural_fed > NEURAL_RESET_FRAMES:
                neural.reset()
            self._neural_fed = self._frame_index
            self.vad_calls += 1
            probability = neural.feed(pcm if whole else SILENT_FRAME)
            threshold = KEEP_PROBABILITY if self.active else START_PROBABILITY
            voiced = loud and probability >= threshold
        if voiced:
            self._uncertain = False
        return voiced

    def _hangover_frames(self) -> int:
        turns = self._turns
        if turns is None:
            return self._end_frames
        if self._unvoiced_run * FRAME_MS < turns.timing.min_ms:
            return turns.timing.max_ms // FRAME_MS  # too early to ask: nothing ends before min_ms
        partial = self._partial() if self._partial is not None else None
        return max(1, turns.hangover_ms(partial) // FRAME_MS)

    def feed(self, pcm: bytes) -> SegmentEvent | None:
        """One 20 ms PCM16 frame (a short or empty frame counts as silence)."""
        self._uncertain = False
        voiced = self.frame_voiced = self._voiced(pcm)
        index = self._frame_index
        self._frame_index += 1
        if not self.active:
            self._preroll.append(pcm if len(pcm) == FRAME_BYTES else bytes(FRAME_BYTES))
            self._recent.append(voiced)
            if sum(self._recent) < self._start_frames:
                return None
            self.active = True
            self._buffer = bytearray(b"".join(self._preroll))
            self._start_index = index + 1 - len(self._preroll)
            self._last_voiced = index
            self._voiced_count = sum(self._recent)
            self._unvoiced_run = self._held = 0
            self._recent.clear()
            self._preroll.clear()
            return SpeechStarted(self._start_index * FRAME_MS)
        self._buffer += pcm if len(pcm) == FRAME_BYTES else bytes(FRAME_BYTES)
        if voiced:
            if self._unvoiced_run and self._turns is not None:
                self._turns.pause_observed(self._unvoiced_run * FRAME_MS)
            self._voiced_count += 1
            self._last_voiced = index
            self._unvoiced_run = self._held = 0
        elif self._uncertain and self._held < HOLD_FRAMES:
            self._held += 1
        else:
            self._unvoiced_run += 1
            if self._unvoiced_run >= self._hangover_frames():
                return self._finish()
        if len(self._buffer) >= self._max_frames * FRAME_BYTES:
            return self._finish()
        return None

    def feed_silence(self) -> SegmentEvent | None:
        """A slot with nothing in it (the agent side between talk spurts)."""
        if not self.active:
            self._frame_index += 1
            self.frame_voiced = False
            self._recent.append(False)
            self._preroll.append(bytes(FRAME_BYTES))
            return None
        return self.feed(b"")

    def flush(self) -> Utterance | None:
        """End of the call: the utterance in progress, if it holds enough speech."""
        if not self.active:
            return None
        event = self._finish()
        return event if isinstance(event, Utterance) else None

    def _finish(self) -> Utterance | None:
        keep = self.voiced_bytes
        self.active = False
        pcm = bytes(self._buffer[:keep])
        self._buffer = bytearray()
        if self._voiced_count < self._min_voiced:
            return None
        return Utterance(self._start_index * FRAME_MS, (self._last_voiced + 1) * FRAME_MS, pcm)
