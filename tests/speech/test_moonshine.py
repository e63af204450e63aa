"""The embedded Moonshine recognizer: its files, its vocabulary, and real speech through it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.speech.voice import spoken, word_error_rate
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.config import settings_from
from trunkline.speech.engines import transcriber_for
from trunkline.speech.moonshine import (
    MoonshineTranscriber,
    MoonshineUnavailable,
    encoded_length,
    is_english_text,
    read_vocabulary,
)
from trunkline.speech.wer import normalize

SENTENCES = (
    "Please call me back tomorrow morning about the delivery.",
    "The heating in my apartment stopped working last night.",
    "Could you send the receipt to my email address?",
)


@pytest.fixture(scope="module")
def moonshine() -> MoonshineTranscriber:
    engine = MoonshineTranscriber(threads=1)
    engine.load()
    return engine


def test_it_is_the_default_engine() -> None:
    assert isinstance(transcriber_for(settings_from({})), MoonshineTranscriber)


def test_the_vocabulary_reads_one_and_two_byte_lengths() -> None:
    long_piece = b"x" * 200  # 200 = 0b1_1001000: low seven bits 0x48, then 1
    data = b"\x05<unk>\x03<s>\x01\xff" + bytes([0xC8, 0x01]) + long_piece + b"\x00"
    assert read_vocabulary(data) == [b"<unk>", b"<s>", b"\xff", long_piece, b""]


@pytest.mark.parametrize("data", [b"\x05<unk", b"\x81", b"\xc8\x01xx"])
def test_a_truncated_vocabulary_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="truncated"):
        read_vocabulary(data)


def test_a_folder_without_the_model_says_what_is_missing(tmp_path: object) -> None:
    with pytest.raises(MoonshineUnavailable, match="encoder_model.ort"):
        MoonshineTranscriber(model_path=str(tmp_path)).load()


def test_the_shipped_vocabulary_has_every_token(moonshine: MoonshineTranscriber) -> None:
    pieces = moonshine._pieces
    assert len(pieces) == 32768
    assert pieces[:3] == [b"<unk>", b"<s>", b"</s>"]
    assert pieces[32000] == b"<<ST_0>>"


@pytest.mark.parametrize("samples", [1000, 16000, 16001, 47999, 80000])
def test_encoded_length_is_what_the_encoder_gives(
    moonshine: MoonshineTranscriber, samples: int
) -> None:
    audio = np.zeros((1, samples), dtype=np.float32)
    assert moonshine._encoder is not None
    states = moonshine._encoder.run(
        None, {"input_values": audio, "attention_mask": np.ones(audio.shape, dtype=np.int64)}
    )[0]
    assert states.shape[1] == encoded_length(samples)


@pytest.mark.parametrize("sentence", SENTENCES)
def test_it_transcribes_piper_speech_carried_as_mulaw(
    moonshine: MoonshineTranscriber, sentence: str
) -> None:
    text = moonshine.transcribe(ulaw_to_pcm16(spoken(sentence)))
    assert word_error_rate(sentence, text) <= 0.2, text


def test_silence_noise_and_hum_transcribe_to_nothing(moonshine: MoonshineTranscriber) -> None:
    assert moonshine.transcribe(bytes(16000)) == ""
    assert moonshine.transcribe(b"") == ""
    for seed in range(8):
        noise = np.random.default_rng(seed).standard_normal(16000)
        for level in (30, 300, 3000):  # -60 to -20 dBFS of white noise, two seconds
            heard = moonshine.transcribe((noise * level).astype("<i2").tobytes())
            assert heard == "", (seed, level, heard)
    hum = 3000 * np.sin(2 * np.pi * 100 * np.arange(8000) / 8000)
    assert moonshine.transcribe(hum.astype("<i2").tobytes()) == ""


@pytest.mark.parametrize("word", ["Yes.", "No.", "Okay.", "Two.", "Thanks."])
def test_a_one_word_answer_is_heard(moonshine: MoonshineTranscriber, word: str) -> None:
    assert normalize(moonshine.transcribe(ulaw_to_pcm16(spoken(word)))) == normalize(word)


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("Four queen of clubs.", True),
        ("café “naïve” — 10:45", True),
        ("♪♪♪", False),
        ("2-3ตวบนลาง 01/02", False),
        ("Hello \ufffd", False),
        (" . ", False),
    ],
)
def test_only_english_text_is_a_transcript(text: str, english: bool) -> None:
    assert is_english_text(text) is english


def test_an_utterance_reads_the_same_however_the_workers_interleave(
    moonshine: MoonshineTranscriber,
) -> None:
    pcm = ulaw_to_pcm16(spoken(SENTENCES[1]))
    alone = moonshine.transcribe(pcm)
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(moonshine.transcribe, [pcm] * 6))
    assert together == [alone] * 6
