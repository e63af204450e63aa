"""Incremental and batched decoding with the embedded Whisper model on real (synthesized) speech."""

from __future__ import annotations

from tests.speech.voice import spoken, whisper, word_error_rate
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.speech.incremental import LocalAgreement
from trunkline.speech.transcriber import TranscriptionRequest

SENTENCES = (
    "Good morning, I would like to book a table for four people.",
    "The heating in my apartment stopped working last night.",
    "Could you send the receipt to my email address?",
)
PASS_BYTES = 2 * 8000 * 400 // 1000  # a partial pass every 400 ms of audio


def test_a_batch_of_utterances_reads_as_each_one_alone() -> None:
    pcm = [ulaw_to_pcm16(spoken(s)) for s in SENTENCES]
    alone = [whisper().transcribe_batch([TranscriptionRequest(p)])[0] for p in pcm]
    together = whisper().transcribe_batch([TranscriptionRequest(p) for p in pcm])
    for one, batched in zip(alone, together, strict=True):
        assert word_error_rate(one, batched) <= 0.1, (one, batched)
    for sentence, text in zip(SENTENCES, together, strict=True):
        assert word_error_rate(sentence, text) <= 0.2, text


def test_the_final_pass_on_agreed_words_reads_as_one_shot_decoding() -> None:
    for sentence in SENTENCES[:2]:
        pcm = ulaw_to_pcm16(spoken(sentence))
        agreement = LocalAgreement()
        for end in range(PASS_BYTES, len(pcm), PASS_BYTES):
            request = TranscriptionRequest(pcm[:end], agreement.prefix)
            agreement.partial(whisper().transcribe_batch([request])[0])
        assert len(agreement.stable) >= 3, agreement.stable  # the prefix carries real words
        final = whisper().transcribe_batch([TranscriptionRequest(pcm, agreement.prefix)])[0]
        one_shot = whisper().transcribe(pcm)
        assert word_error_rate(one_shot, final) <= 0.15, (one_shot, final)
        assert word_error_rate(sentence, final) <= 0.2, final
