"""Start-up loading of the speech engines: states per engine, a broken engine reported."""

from __future__ import annotations

import time

import pytest

from trunkline.config import settings_from
from trunkline.speech.preload import SpeechPreload


def settle(preload: SpeechPreload, deadline_s: float = 60.0) -> dict[str, str]:
    end = time.monotonic() + deadline_s
    while not preload.settled:
        assert time.monotonic() < end, preload.states()
        time.sleep(0.05)
    return preload.states()


def test_nothing_to_load_when_speech_is_off() -> None:
    preload = SpeechPreload(settings_from({"transcription": "off", "text_to_speech": "off"}))
    preload.start()
    assert preload.states() == {} and preload.settled


def test_a_missing_engine_is_reported_failed_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no espeak-ng to be found
    settings = settings_from({"transcription": "off", "text_to_speech": "espeak"})
    preload = SpeechPreload(settings)
    assert preload.states() == {"text_to_speech:espeak": "loading"}
    preload.start()
    preload.start()  # once only
    assert settle(preload) == {"text_to_speech:espeak": "failed"}
    assert "speech engine text_to_speech:espeak failed to load: espeak-ng is not installed" in (
        caplog.text
    )


def test_the_embedded_voice_loads_and_is_warm(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="trunkline.speech")
    preload = SpeechPreload(settings_from({"transcription": "off", "text_to_speech": "piper"}))
    preload.start()
    assert settle(preload) == {"text_to_speech:piper": "ready"}
    assert "loading speech engine text_to_speech:piper" in caplog.text
    assert "speech engine text_to_speech:piper ready in" in caplog.text
