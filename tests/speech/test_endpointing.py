"""End of turn on real speech: the piper voice with pauses put in, through the segmenter and Silero.

Each case builds a caller's audio from synthesized phrases with their own
leading and trailing silence cut off, so the pause between them is exactly
the one the test inserts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tests.speech.voice import frames, spoken, whisper
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.speech.neural_vad import SileroStream, shared_model
from trunkline.speech.segmenter import SpeechSegmenter, Utterance
from trunkline.speech.turns import EndOfTurn

SILENCE_BYTE = b"\xff"  # μ-law silence


def phrase(text: str) -> bytes:
    """``text`` spoken, μ-law 8 kHz, from its first audible sample to its last."""
    ulaw = spoken(text)
    level = np.abs(np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2").astype(np.int32))
    audible = np.nonzero(level > 300)[0]
    return ulaw[audible[0] : audible[-1] + 1]


def caller_audio(*parts: str | int) -> tuple[list[bytes], int]:
    """Phrases and pauses (ms) in order, with 500 ms before and 1.5 s after; the end of speech."""
    ulaw = b"".join(SILENCE_BYTE * (8 * p) if isinstance(p, int) else phrase(p) for p in parts)
    return frames(ulaw, lead_ms=500, tail_ms=1500), 500 + len(ulaw) // 8


class DecodedSoFar:
    """A partial transcript as a decoder gives it: Whisper on the utterance up to its last voice."""

    def __init__(self) -> None:
        self.segmenter: SpeechSegmenter | None = None
        self._decoded: dict[int, str] = {}

    def __call__(self) -> str | None:
        assert self.segmenter is not None
        audio = self.segmenter.voiced_audio
        if len(audio) not in self._decoded:
            self._decoded[len(audio)] = whisper().transcribe(audio)
        return self._decoded[len(audio)]


def turns_of(
    ulaw_frames: list[bytes], partial: Callable[[], str | None] | None = None
) -> list[tuple[int, Utterance]]:
    """(when the turn's end was decided, in ms of audio; the utterance) for each turn."""
    segmenter = SpeechSegmenter(
        neural=SileroStream(shared_model()), turns=EndOfTurn(), partial=partial
    )
    if isinstance(partial, DecodedSoFar):
        partial.segmenter = segmenter
    ended = []
    for index, frame in enumerate(ulaw_frames):
        event = segmenter.feed(ulaw_to_pcm16(frame))
        if isinstance(event, Utterance):
            ended.append(((index + 1) * 20, event))
    return ended


def test_a_pause_mid_sentence_does_not_split_the_turn() -> None:
    audio, speech_end = caller_audio("I'd like to order a", 350, "large pizza with mushrooms.")
    turns = turns_of(audio)
    assert len(turns) == 1
    decided_ms, utterance = turns[0]
    assert abs(utterance.end_ms - speech_end) <= 100
    # No partial transcript: the plain hang-over, kept above the 350 ms pause just heard.
    assert 350 < decided_ms - speech_end <= 600


def test_a_pause_after_a_word_ending_softly_does_not_split_the_turn() -> None:
    # The final "s" of "is" is under the energy gate: the pause the VAD hears is longer.
    audio, _ = caller_audio("My account number is", 400, "four five two seven nine.")
    assert len(turns_of(audio)) == 1


def test_a_longer_pause_after_a_trailing_word_waits_for_the_rest() -> None:
    audio, _ = caller_audio("I'd like to order a", 650, "large pizza with mushrooms.")
    assert len(turns_of(audio)) == 2  # the plain hang-over alone splits it...
    turns = turns_of(audio, DecodedSoFar())
    assert len(turns) == 1  # ...the partial transcript ends in "a": the turn goes on
    assert turns[0][1].duration_ms > 2500


def test_a_complete_sentence_ends_the_turn_sooner() -> None:
    audio, speech_end = caller_audio("Can you help me with my account?")
    plain = turns_of(audio)
    worded = turns_of(audio, DecodedSoFar())
    assert len(plain) == len(worded) == 1
    assert worded[0][0] - speech_end <= 350  # 200 ms after the question mark
    assert worded[0][0] < plain[0][0]


def test_quiet_noise_never_reaches_the_neural_vad() -> None:
    model = shared_model()
    before = model.windows_run
    rng = np.random.default_rng(1)
    noise = (rng.normal(0, 40, 8000 * 2)).astype("<i2").tobytes()  # about -58 dBFS hiss
    segmenter = SpeechSegmenter(neural=SileroStream(model), turns=EndOfTurn())
    assert all(segmenter.feed(noise[i : i + 320]) is None for i in range(0, len(noise), 320))
    assert segmenter.vad_calls == 0 and model.windows_run == before
