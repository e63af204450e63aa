"""Voice activity detection on real speech: utterances, offsets, noise, bounds."""

from __future__ import annotations

import numpy as np

from tests.speech.voice import frames, spoken
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.speech.segmenter import SpeechSegmenter, SpeechStarted, Utterance


def run(segmenter: SpeechSegmenter, ulaw_frames: list[bytes]) -> list[object]:
    events: list[object] = []
    for frame in ulaw_frames:
        event = segmenter.feed(ulaw_to_pcm16(frame))
        if event is not None:
            events.append(event)
    return events


def test_two_sentences_become_two_utterances_at_their_offsets() -> None:
    first = spoken("Good morning, I would like to book a table.")
    second = spoken("For four people at eight tonight.")
    audio = frames(first, lead_ms=1000, tail_ms=1500) + frames(second, tail_ms=1000)
    events = run(SpeechSegmenter(), audio)
    utterances = [e for e in events if isinstance(e, Utterance)]
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(utterances) == 2 and len(starts) == 2
    first_ms = len(first) // 8
    # The first starts near 1 s (pre-roll 200 ms before the voice) and ends within the speech.
    assert 700 <= utterances[0].start_ms <= 1200
    assert 1000 + first_ms - 400 <= utterances[0].end_ms <= 1000 + first_ms + 100
    second_start = 1000 + len(frames(first)) * 20 + 1500
    assert second_start - 300 <= utterances[1].start_ms <= second_start + 300
    for utterance in utterances:
        assert len(utterance.pcm) == utterance.duration_ms * 16


def test_silence_and_quiet_noise_never_reach_the_vad() -> None:
    rng = np.random.default_rng(1)
    noise = (rng.normal(0, 40, 8000 * 3)).astype("<i2").tobytes()  # about -58 dBFS hiss
    segmenter = SpeechSegmenter()
    events = [segmenter.feed(noise[i : i + 320]) for i in range(0, len(noise), 320)]
    assert events == [None] * len(events)
    assert segmenter.vad_calls == 0


def test_a_click_is_not_an_utterance() -> None:
    segmenter = SpeechSegmenter()
    click = (np.ones(160) * 12000).astype("<i2").tobytes()
    events = run(segmenter, [])
    for _ in range(20):
        events.append(segmenter.feed(bytes(320)))
    for _ in range(3):
        events.append(segmenter.feed(click + click))
    for _ in range(40):
        events.append(segmenter.feed(bytes(320)))
    assert not any(isinstance(e, Utterance) for e in events)


def test_a_monologue_is_cut_at_the_bound() -> None:
    speech = spoken("This sentence keeps going and going so that the segmenter has to cut it.")
    segmenter = SpeechSegmenter(max_frames=50)  # one second
    events = run(segmenter, frames(speech, lead_ms=200, tail_ms=600))
    utterances = [e for e in events if isinstance(e, Utterance)]
    assert len(utterances) >= 2
    assert all(len(u.pcm) <= 50 * 320 for u in utterances)


def test_flush_hands_over_the_utterance_in_progress() -> None:
    segmenter = SpeechSegmenter()
    run(segmenter, frames(spoken("Hello there, how are you?"), lead_ms=200))
    assert segmenter.active
    utterance = segmenter.flush()
    assert utterance is not None and utterance.duration_ms > 500
    assert segmenter.flush() is None
