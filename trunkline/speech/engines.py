"""The process's speech engines and worker pools, built from settings on first use.

Engines are cached per configuration for the whole process, so every
gateway in it shares one loaded model; nothing is imported or loaded until a
call actually needs speech. Each gateway owns two pools of worker threads
(transcription and synthesis) with bounded queues. The neural VAD model is
loaded once per process too, at start-up by the preload or by the first call
that transcribes; when it cannot load, the WebRTC VAD is used and the log
says why, once.
"""

from __future__ import annotations

import logging
from functools import cache

from trunkline.config import Settings, VadEngine
from trunkline.speech.moonshine import MoonshineTranscriber
from trunkline.speech.neural_vad import NeuralVadUnavailable, SileroModel, shared_model
from trunkline.speech.synthesizer import EspeakSynthesizer, PiperSynthesizer, Synthesizer
from trunkline.speech.transcriber import HttpTranscriber, Transcriber, WhisperTranscriber
from trunkline.speech.workers import SpeechWorkers, spare_cores

log = logging.getLogger("trunkline.speech")

SYNTHESIS_QUEUE = 256


@cache
def _whisper(threads: int, workers: int, window_seconds: int) -> WhisperTranscriber:
    return WhisperTranscriber(threads=threads, workers=workers, window_seconds=window_seconds)


@cache
def _moonshine(threads: int) -> MoonshineTranscriber:
    return MoonshineTranscriber(threads=threads)


@cache
def _piper() -> PiperSynthesizer:
    return PiperSynthesizer()


@cache
def _silero() -> SileroModel | None:
    try:
        return shared_model()
    except NeuralVadUnavailable as exc:
        log.warning("neural VAD unavailable, using the WebRTC VAD: %s", exc)
        return None


def neural_vad_for(settings: Settings) -> SileroModel | None:
    """The Silero model when ``TRUNKLINE_VAD=silero`` and it loads (None: the WebRTC VAD)."""
    if settings.speech.vad is not VadEngine.SILERO:
        return None
    return _silero()


def transcriber_for(settings: Settings) -> Transcriber | None:
    if settings.speech.transcription == "moonshine":
        return _moonshine(settings.speech.transcription_threads)
    if settings.speech.transcription == "whisper":
        return _whisper(
            settings.speech.transcription_threads,
            transcription_workers(settings),
            settings.speech.transcription_window_seconds,
        )
    if settings.speech.transcription == "http":
        return HttpTranscriber(
            settings.speech.transcription_api_url,
            settings.speech.transcription_api_key,
            settings.speech.transcription_api_model,
        )
    return None


def transcription_workers(settings: Settings) -> int:
    """The transcription worker threads: as set, or one per spare core."""
    return settings.speech.transcription_workers or spare_cores()


def synthesizer_for(settings: Settings) -> Synthesizer | None:
    if settings.speech.text_to_speech == "piper":
        return _piper()
    if settings.speech.text_to_speech == "espeak":
        return EspeakSynthesizer()
    return None


class SpeechEngines:
    """What a gateway's calls use for speech: engines (or None when off) and their pools."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.transcriber = transcriber_for(settings)
        self.synthesizer = synthesizer_for(settings)
        self.partial_every_ms = settings.speech.transcription_partial_ms
        self.transcription = SpeechWorkers(
            "transcription",
            threads=transcription_workers(settings),
            max_queued=settings.speech.transcription_queue,
            max_batch=settings.speech.transcription_batch,
            priority=settings.speech.speech_worker_priority,
        )
        self.synthesis = SpeechWorkers(
            "synthesis",
            threads=settings.speech.speech_workers,
            max_queued=SYNTHESIS_QUEUE,
            priority=settings.speech.speech_worker_priority,
        )

    @property
    def neural_vad(self) -> SileroModel | None:
        """The neural VAD model, loaded on first use (None: the WebRTC VAD is used)."""
        return neural_vad_for(self._settings)

    def stop(self) -> None:
        self.transcription.stop()
        self.synthesis.stop()
