"""Speech to text with Moonshine tiny (English), run with onnxruntime: the offline default.

The model is the one the ``moonshine-voice`` wheel (version 0.0.73, MIT)
ships in ``moonshine_voice/assets/tiny-en``: an encoder and a merged decoder
in ONNX Runtime's format, and its vocabulary. Nothing is downloaded at run
time and nothing of that package is imported: only its files are read, and
onnxruntime (already needed by the neural VAD) runs them.

Why Moonshine and not Whisper tiny.en: Moonshine's encoder reads the audio
as long as it is, where Whisper's always reads a fixed window (10 s here), so
a phone utterance of 1-3 s costs a third to a sixth of the encoder work; its
decoder is smaller too. On real phone speech it also reads better (see
``docs/performance.md`` for both engines measured in one run).

The contract of the two models: the encoder takes 16 kHz float samples
and an attention mask (which does not keep a batch's padding out of the
utterances' states, so utterances are decoded one at a time) and gives
288-wide states, about 41 a second; the decoder takes the token
so far, the encoder states and its key/value cache, and gives the next
token's logits. Decoding is greedy from ``<s>`` (1) to ``</s>`` (2), capped
at ``TOKENS_PER_SECOND`` of audio so a runaway repetition stops early.

There is no "no speech" token: given silence or a hum, the model still says
"You" (and white noise may come out as "♪♪♪" or a few letters of another
script). Utterances quieter than ``SILENCE_RMS`` are not decoded; a
transcript of at most ``DOUBT_TOKENS`` tokens said with low confidence, a
lone "You", or one that is not English text is taken as nothing.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import unicodedata
from typing import TYPE_CHECKING, Any

import numpy as np

from trunkline.speech.transcriber import MODEL_RATE, wideband

if TYPE_CHECKING:
    import onnxruntime

MODEL_PACKAGE = "moonshine_voice"
MODEL_FOLDER = ("assets", "tiny-en")
ENCODER_FILE = "encoder_model.ort"
DECODER_FILE = "decoder_model_merged.ort"
VOCABULARY_FILE = "tokenizer.bin"
LAYERS = 6
HEADS = 8
HEAD_SIZE = 36
UNKNOWN = 0  # <unk>
START = 1  # <s>
END = 2  # </s>
TIME_TOKENS = 32000  # <<ST_0>> and up: never text
TOKENS_PER_SECOND = 6.5
MIN_TOKENS = 4
# An utterance quieter than -55 dBFS (RMS) is not decoded: speech on a phone line is
# -35 to -15 dBFS, the faint line noise a detector may let through is -60 dBFS.
SILENCE_RMS = 10 ** (-55 / 20)
# A transcript this short said with a mean log probability under DOUBT_LOGPROB is noise
# (noise reads "You" at -0.8 to -1.7 and "2." at -1.3; "Yes.", "Two." at -0.1 to -0.75).
DOUBT_TOKENS = 3
DOUBT_LOGPROB = -1.0
# What the model says for any sound without words (noise, hum, a tone), with a mean log
# probability of -0.1 to -0.9: alone, it is taken as nothing.
FILLER = "You"
# Besides Latin script, digits and ASCII, the typographic punctuation of English text.
ENGLISH_PUNCTUATION = frozenset("‘’“”–—…")
# An utterance ends at its last voiced frame, often inside a final unvoiced consonant;
# Moonshine, unlike Whisper (which pads every utterance to its window), reads such an end
# as more words ("cake" as "K. K.") unless some silence follows it. 100 ms read best of
# 0-250 ms on the synthetic corpus and real phone speech (benchmarks.speech's sets).
TRAILING_SILENCE = np.zeros(MODEL_RATE // 10, dtype=np.float32)
WORD_START = "\u2581"  # the vocabulary's mark of a word's first piece


class MoonshineUnavailable(Exception):
    """The model files or onnxruntime could not be loaded."""


def model_folder() -> str:
    """The tiny-en folder inside the installed moonshine-voice wheel (the package is not run)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MoonshineUnavailable("moonshine-voice is not installed")
    return checked_folder(os.path.join(list(spec.submodule_search_locations)[0], *MODEL_FOLDER))


def checked_folder(folder: str) -> str:
    """``folder``, once it is known to hold the three model files."""
    for name in (ENCODER_FILE, DECODER_FILE, VOCABULARY_FILE):
        if not os.path.isfile(os.path.join(folder, name)):
            raise MoonshineUnavailable(f"no {name} in {folder} (moonshine-voice 0.0.73 ships it)")
    return folder


def read_vocabulary(data: bytes) -> list[bytes]:
    """The token pieces of ``tokenizer.bin``: each a length (one byte, or two when the first
    has its high bit set, low seven bits first) followed by that many bytes."""
    pieces: list[bytes] = []
    at = 0
    while at < len(data):
        size = data[at]
        at += 1
        if size & 0x80:
            if at >= len(data):
                raise ValueError("vocabulary truncated in a piece's length")
            size = (size & 0x7F) | (data[at] << 7)
            at += 1
        if at + size > len(data):
            raise ValueError("vocabulary truncated in a piece")
        pieces.append(data[at : at + size])
        at += size
    return pieces


def encoded_length(samples: int) -> int:
    """Encoder states for ``samples`` of 16 kHz audio (the encoder's three strided convolutions)."""
    length = (samples - 127) // 64 + 1
    length = (length - 7) // 3 + 1
    return max(0, (length - 3) // 2 + 1)


class MoonshineTranscriber:
    """Moonshine tiny.en on the CPU, shared by the speech workers (onnxruntime is thread-safe)."""

    name = "moonshine"
    # A complete sentence often comes out with a final comma: it says nothing of more words.
    comma_trails = False

    def __init__(self, *, model_path: str | None = None, threads: int = 1) -> None:
        self._model_path = model_path
        self._threads = threads
        self._encoder: onnxruntime.InferenceSession | None = None
        self._decoder: onnxruntime.InferenceSession | None = None
        self._outputs: list[str] = []
        self._pieces: list[bytes] = []
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._decoder is not None:
                return
            try:
                import onnxruntime
            except ImportError as exc:
                raise MoonshineUnavailable(f"onnxruntime is not installed: {exc}") from exc
            folder = checked_folder(self._model_path) if self._model_path else model_folder()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            # Worker threads that spin between runs burn a core the media path needs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            providers = ["CPUExecutionProvider"]
            with open(os.path.join(folder, VOCABULARY_FILE), "rb") as file:
                self._pieces = read_vocabulary(file.read())
            self._encoder = onnxruntime.InferenceSession(
                os.path.join(folder, ENCODER_FILE), options, providers=providers
            )
            decoder = onnxruntime.InferenceSession(
                os.path.join(folder, DECODER_FILE), options, providers=providers
            )
            self._outputs = [output.name for output in decoder.get_outputs()]
            self._decoder = decoder

    def transcribe(self, pcm8k: bytes) -> str:
        """Text of one utterance: one encoder call on the audio as long as it is, then greedy
        decoding.

        Utterances are not batched: the encoder attends to a batch's padding (its
        attention mask does not hide it), so a padded utterance reads differently, and
        on a CPU a batch costs what its utterances cost one by one.
        """
        if self._decoder is None:
            self.load()
        encoder, decoder = self._encoder, self._decoder
        assert encoder is not None and decoder is not None
        samples = wideband(pcm8k)
        if encoded_length(len(samples)) == 0 or float(np.sqrt(np.mean(samples**2))) < SILENCE_RMS:
            return ""
        audio = np.concatenate((samples, TRAILING_SILENCE))[np.newaxis, :]
        states = encoder.run(
            None, {"input_values": audio, "attention_mask": np.ones(audio.shape, dtype=np.int64)}
        )[0]
        states_mask = np.ones(states.shape[:2], dtype=np.int64)
        cache: dict[str, Any] = {
            f"past_key_values.{layer}.{part}.{kind}": np.zeros(
                (1, HEADS, 0, HEAD_SIZE), dtype=np.float32
            )
            for layer in range(LAYERS)
            for part in ("decoder", "encoder")
            for kind in ("key", "value")
        }
        tokens: list[int] = []
        logprob = 0.0
        token = START
        for step in range(MIN_TOKENS + int(TOKENS_PER_SECOND * len(samples) / MODEL_RATE)):
            results = decoder.run(
                None,
                {
                    "input_ids": np.array([[token]], dtype=np.int64),
                    "encoder_hidden_states": states,
                    "encoder_attention_mask": states_mask,
                    "use_cache_branch": np.array([step > 0]),
                    **cache,
                },
            )
            logits = results[0][0, -1, :]
            logits[UNKNOWN] = logits[START] = -np.inf
            logits[TIME_TOKENS:] = -np.inf
            token = int(logits.argmax())
            if token == END:
                break
            if len(tokens) < DOUBT_TOKENS:  # only a transcript this short is judged by it
                top = float(logits[token])
                logprob += -float(np.log(np.exp(logits - top).sum()))
            tokens.append(token)
            for name, value in zip(self._outputs[1:], results[1:], strict=True):
                # The encoder's keys and values are computed once, at the first step.
                if step == 0 or ".decoder." in name:
                    cache[name.replace("present", "past_key_values")] = value
        return self._text(tokens, logprob)

    def _text(self, tokens: list[int], logprob: float) -> str:
        """The transcript of ``tokens``; ``logprob`` is that of their first DOUBT_TOKENS."""
        if not tokens:
            return ""
        if len(tokens) <= DOUBT_TOKENS and logprob / len(tokens) < DOUBT_LOGPROB:
            return ""
        text = b"".join(self._pieces[token] for token in tokens).decode("utf-8", "replace")
        text = text.replace(WORD_START, " ").strip()
        return text if text != FILLER and is_english_text(text) else ""


def is_english_text(text: str) -> bool:
    """Words of the English model: noise comes out as music notes ("♪♪"), pieces of other
    scripts or broken UTF-8, never as Latin letters and digits alone."""
    if not any(char.isalnum() for char in text):
        return False
    return all(
        char.isascii()
        or char in ENGLISH_PUNCTUATION
        or (char.isalpha() and unicodedata.name(char, "").startswith("LATIN"))
        for char in text
    )
