"""The neural VAD on real speech: the Silero model inside faster-whisper, one state per stream."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.speech.voice import frames, spoken
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.config import settings_from
from trunkline.speech import engines
from trunkline.speech.neural_vad import (
    NeuralVadUnavailable,
    SileroModel,
    SileroStream,
    shared_model,
)


def probabilities(stream: SileroStream, ulaw_frames: list[bytes]) -> list[float]:
    return [stream.feed(ulaw_to_pcm16(frame)) for frame in ulaw_frames]


def test_speech_is_speech_and_silence_and_hiss_are_not() -> None:
    speech = frames(spoken("Good morning, I would like to book a table for two."))
    stream = SileroStream(shared_model())
    assert max(probabilities(stream, frames(b"", tail_ms=600))) < 0.1
    heard = probabilities(stream, speech)
    # Most of the sentence is voice (piper's pauses differ a little from run to run).
    assert np.mean(np.array(heard) >= 0.5) > 0.5
    rng = np.random.default_rng(7)
    hiss = rng.normal(0, 600, 8000).astype("<i2").tobytes()  # loud enough to pass the gate
    stream.reset()
    quiet = [stream.feed(hiss[i : i + 320]) for i in range(0, len(hiss), 320)]
    assert max(quiet) < 0.5


def test_each_stream_keeps_its_own_state() -> None:
    model = shared_model()
    talking, silent = SileroStream(model), SileroStream(model)
    speech = frames(spoken("Hello, is anyone there?"))
    silence = frames(b"", tail_ms=len(speech) * 20)
    for voiced, quiet in zip(speech, silence, strict=True):
        talking.feed(ulaw_to_pcm16(voiced))
        silent.feed(ulaw_to_pcm16(quiet))
    assert silent.probability < 0.1
    assert talking.feed(ulaw_to_pcm16(speech[-8])) >= 0.0  # still answering after interleaving


def test_one_window_runs_per_32_ms() -> None:
    model = SileroModel()
    stream = SileroStream(model)
    for _ in range(50):  # one second
        stream.feed(bytes(320))
    assert model.windows_run == 31  # 16000 samples / 512, the last window not yet complete


def test_a_missing_model_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(NeuralVadUnavailable, match="did not load"):
        SileroModel("/nonexistent/silero.onnx")


def test_the_setting_picks_the_vad_and_a_model_that_cannot_load_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert engines.neural_vad_for(settings_from({"vad": "webrtc"})) is None
    assert engines.neural_vad_for(settings_from({"vad": "silero"})) is shared_model()

    def unavailable() -> SileroModel:
        raise NeuralVadUnavailable("onnxruntime is not installed")

    engines._silero.cache_clear()
    monkeypatch.setattr(engines, "shared_model", unavailable)
    caplog.set_level(logging.WARNING, logger="trunkline.speech")
    try:
        assert engines.neural_vad_for(settings_from({"vad": "silero"})) is None
        assert "using the WebRTC VAD: onnxruntime is not installed" in caplog.text
    finally:
        engines._silero.cache_clear()
