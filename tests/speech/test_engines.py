"""The speech engines on real audio: Whisper, piper, espeak-ng, and an OpenAI-compatible API."""

from __future__ import annotations

import asyncio
import shutil
import wave
from io import BytesIO
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from tests.conftest import require
from tests.speech.voice import spoken, transcribe_ulaw, whisper, word_error_rate
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.speech.synthesizer import EspeakSynthesizer, beep
from trunkline.speech.transcriber import HttpTranscriber, TranscriptionError

SENTENCE = "Please call me back tomorrow morning about the delivery."


def test_whisper_transcribes_piper_speech_carried_as_mulaw() -> None:
    text = transcribe_ulaw(spoken(SENTENCE))
    assert word_error_rate(SENTENCE, text) <= 0.2, text


def test_silence_transcribes_to_nothing_much() -> None:
    text = whisper().transcribe(bytes(16000))
    assert len(text.split()) <= 2, text


def test_piper_audio_is_telephone_band_mulaw() -> None:
    audio = spoken("Testing one two three.")
    assert 0.8 <= len(audio) / 8000 <= 4.0
    pcm = np.frombuffer(ulaw_to_pcm16(audio), dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm)) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / 8000)
    assert spectrum[freqs > 3800].sum() < 0.01 * spectrum.sum()


def test_beep_is_a_clean_tone() -> None:
    tone = np.frombuffer(ulaw_to_pcm16(beep(0.5, 1000.0)), dtype="<i2").astype(np.float64)
    assert tone.size == 4000
    spectrum = np.abs(np.fft.rfft(tone))
    assert abs(np.fft.rfftfreq(tone.size, 1 / 8000)[spectrum.argmax()] - 1000) < 5


def test_espeak_fallback_speaks_intelligibly() -> None:
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")
    audio = b"".join(EspeakSynthesizer().synthesize("Please call me back tomorrow morning."))
    assert word_error_rate("Please call me back tomorrow morning.", transcribe_ulaw(audio)) <= 0.34


class TranscriptionApi:
    """An OpenAI-compatible /v1/audio/transcriptions endpoint on loopback."""

    def __init__(self, status: int = 200, reply: dict[str, Any] | None = None) -> None:
        self.status = status
        self.reply = reply
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        with wave.open(BytesIO(upload.file.read())) as wav:
            pcm = wav.readframes(wav.getnframes())
            rate, width = wav.getframerate(), wav.getsampwidth()
        self.requests.append(
            {
                "authorization": request.headers.get("Authorization"),
                "model": form.get("model"),
                "rate": rate,
                "width": width,
                "filename": upload.filename,
            }
        )
        if self.status != 200:
            return web.json_response({"error": {"message": "nope"}}, status=self.status)
        if self.reply is not None:
            return web.json_response(self.reply)
        # Transcribe for real so the text depends on the audio that was sent.
        text = await asyncio.to_thread(whisper().transcribe, pcm)
        return web.json_response({"text": text})


async def serve_api(api: TranscriptionApi) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_http_engine_sends_wav_with_key_and_model() -> None:
    api = TranscriptionApi()
    runner, url = await serve_api(api)
    try:
        engine = HttpTranscriber(url, "sk-test-key", "whisper-1")
        pcm = ulaw_to_pcm16(spoken(SENTENCE))
        text = await asyncio.to_thread(engine.transcribe, pcm)
        assert word_error_rate(SENTENCE, text) <= 0.2, text
        (seen,) = api.requests
        assert seen == {
            "authorization": "Bearer sk-test-key",
            "model": "whisper-1",
            "rate": 8000,
            "width": 2,
            "filename": "utterance.wav",
        }
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status", [401, 429, 500])
async def test_http_engine_errors_are_transcription_errors(status: int) -> None:
    runner, url = await serve_api(TranscriptionApi(status))
    try:
        engine = HttpTranscriber(url, "k", "m")
        with pytest.raises(TranscriptionError, match=str(status)):
            await asyncio.to_thread(engine.transcribe, bytes(3200))
    finally:
        await runner.cleanup()


async def test_http_engine_unreachable_is_a_transcription_error() -> None:
    engine = HttpTranscriber("http://127.0.0.1:9", "k", "m")
    with pytest.raises(TranscriptionError, match="unreachable"):
        await asyncio.to_thread(engine.transcribe, bytes(3200))


async def test_http_engine_rejects_a_response_without_text() -> None:
    runner, url = await serve_api(TranscriptionApi(reply={"text": 1}))
    try:
        with pytest.raises(TranscriptionError, match="no text"):
            await asyncio.to_thread(HttpTranscriber(url, "k", "m").transcribe, bytes(3200))
    finally:
        await runner.cleanup()
