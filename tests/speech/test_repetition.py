"""The embedded recognizers do not run away repeating themselves on short or noisy phone speech."""

from __future__ import annotations

import pytest

from benchmarks import human_speech
from benchmarks.speech import engine_named
from benchmarks.telephone import telephone_line
from tests.conftest import require
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.config import settings_from
from trunkline.speech.wer import normalize


@pytest.mark.parametrize("engine", ["moonshine", "whisper"])
def test_no_transcript_of_real_phone_speech_says_more_than_was_said(engine: str) -> None:
    require(human_speech.available(), "pocketsphinx-testdata is not installed")
    window = settings_from({}).speech.transcription_window_seconds
    recognizer = engine_named(engine, window)
    for seed, clip in enumerate(human_speech.clips()):
        for snr in (None, 20.0):
            line = telephone_line(clip.pcm16, clip.rate, snr=snr, seed=seed)
            heard = normalize(recognizer.transcribe(ulaw_to_pcm16(line))).split()
            said = normalize(clip.text).split()
            assert len(heard) <= len(said) + 2, (clip.name, snr, heard)
