"""A neural voice activity detector: the Silero VAD model, run with onnxruntime, one state per stream.

The model is the ONNX file faster-whisper ships inside its wheel
(``faster_whisper/assets/silero_vad_v6.onnx``), so nothing is downloaded and
no new package is needed: onnxruntime comes with faster-whisper. Its contract:
16 kHz float samples in windows of 512 (32 ms), each preceded by the last 64
samples of the window before it (576 inputs), and an LSTM state (``h``, ``c``,
1×1×128 each) carried from window to window; it answers the probability that
the window holds speech.

``SileroStream`` adapts that to a phone party's 20 ms PCM16 8 kHz frames: it
upsamples each frame to 16 kHz (the call's persistent polyphase resampler,
so frame boundaries never click), collects 512 samples and runs one window —
every 1.6 frames on average. Between runs it answers the last probability.
One inference is a fraction of a millisecond; the segmenter only asks for it
while a frame is loud enough to be speech or an utterance is under way.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from trunkline.codecs.resample import StreamingResampler

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("trunkline.speech")

WINDOW = 512  # samples at 16 kHz: 32 ms
CONTEXT = 64  # samples of the previous window the model sees before each window
STATE_SHAPE = (1, 1, 128)

Floats = npt.NDArray[np.float32]


class NeuralVadUnavailable(Exception):
    """The Silero model or onnxruntime could not be loaded (the WebRTC VAD is used instead)."""


def silero_model_path() -> str:
    """The model file inside the installed faster-whisper wheel."""
    try:
        import faster_whisper
    except ImportError as exc:
        raise NeuralVadUnavailable(f"faster-whisper is not installed: {exc}") from exc
    path = os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")
    if not os.path.isfile(path):
        raise NeuralVadUnavailable(f"no Silero VAD model at {path}")
    return path


class SileroModel:
    """One loaded model, shared by every stream of the process (the session is thread-safe)."""

    def __init__(self, path: str | None = None) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise NeuralVadUnavailable(f"onnxruntime is not installed: {exc}") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one window is tiny: threads would only add hand-offs
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
                path or silero_model_path(),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise NeuralVadUnavailable(f"Silero VAD model did not load: {exc}") from exc
        self.windows_run = 0

    def run(self, window: Floats, h: Floats, c: Floats) -> tuple[float, Floats, Floats]:
        """One 1×576 window and the stream's state in; speech probability and new state out."""
        self.windows_run += 1
        prob, h, c = self._session.run(None, {"input": window, "h": h, "c": c})
        return float(prob.reshape(-1)[0]), h, c


_shared: SileroModel | None = None
_shared_lock = threading.Lock()


def shared_model() -> SileroModel:
    """The process's model, loaded on first use (raises ``NeuralVadUnavailable``)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SileroModel()
        return _shared


class SileroStream:
    """One party's neural VAD: 20 ms PCM16 8 kHz frames in, the latest speech probability out."""

    __slots__ = ("_c", "_filled", "_h", "_model", "_resampler", "_window", "probability")

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self._resampler = StreamingResampler(8000, 16000)
        self._window: Floats = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)
        self._filled = 0  # samples of the current window collected after its context
        self._h: Floats = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c: Floats = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.probability = 0.0

    def reset(self) -> None:
        """Forget the stream's past (after a long stretch the VAD was not fed)."""
        self._resampler = StreamingResampler(8000, 16000)
        self._window[:] = 0.0
        self._filled = 0
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.probability = 0.0

    def feed(self, pcm8k: bytes) -> float:
        """One frame (any whole number of samples); runs a window whenever one is complete."""
        wide = np.frombuffer(self._resampler.process(pcm8k), dtype="<i2")
        row = self._window[0]
        start = 0
        while start < len(wide):
            take = min(WINDOW - self._filled, len(wide) - start)
            at = CONTEXT + self._filled
            row[at : at + take] = wide[start : start + take] * (1.0 / 32768.0)
            self._filled += take
            start += take
            if self._filled == WINDOW:
                self.probability, self._h, self._c = self._model.run(self._window, self._h, self._c)
                row[:CONTEXT] = row[WINDOW:]  # the window's last 64 samples open the next
                self._filled = 0
        return self.probability
