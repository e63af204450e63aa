"""End of turn: how soon after a caller stops speaking the turn is over, and what it costs per frame.

    python -m benchmarks.endpointing [--engine moonshine|whisper] [--sentences 34]
                                     [--frames 3000] [--save]

Each sentence of the speech benchmark's corpus is spoken by the bundled piper
voice, trimmed to its first and last audible sample (so the end of speech is
known to the sample), carried as μ-law 8 kHz and fed 20 ms at a time to the
call's segmenter in three configurations:

- ``webrtc-500``: the WebRTC VAD with the former fixed 500 ms hang-over;
- ``silero``: the Silero VAD and the adaptive end of turn without any partial
  transcript (the plain hang-over);
- ``silero+decode``: as a speech-to-text call runs it — 160 ms into a pause
  the utterance so far goes to the recognizer (``--engine``, by default the
  configured one, on one thread); its text reaches the end-of-turn rule
  when the decoding (timed on this machine) is done, and when the turn ends
  on that audio it is the final transcript;
- ``silero+text``: the same with the text there at once, as from a decoder
  that keeps up with the caller (incremental decoding): what the end-of-turn
  rules give when decoding is not the bottleneck.

**Decision latency** is the audio time from the end of speech to the frame at
which the segmenter ends the turn. **End of speech → final transcript** adds
the decoding: for the first two, the turn's audio decoded once the turn ends
(one worker, no queue); for ``silero+decode``, the later of the turn's end and
the early decoding's end. A second set of utterances puts a pause of
``--pause-ms`` after an unfinished phrase ("I'd like to order a") and counts
the turns each configuration splits there.

The per-frame cost of each VAD (median ``perf_counter_ns`` over ``--frames``
speech frames) and of the echo guard (per voiced caller frame while the agent
talks, and per played slot) is reported too. Timings from a shared, loaded
machine vary; ``--save`` writes ``benchmarks/results/endpointing.json``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import webrtcvad

from benchmarks._report import percentile, print_table, write_results
from benchmarks.speech import CORPUS, engine_named
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.config import settings_from
from trunkline.speech.echo import EchoGuard
from trunkline.speech.neural_vad import SileroModel, SileroStream
from trunkline.speech.preload import WARM_UP_TONE
from trunkline.speech.segmenter import SpeechSegmenter, Utterance
from trunkline.speech.synthesizer import PiperSynthesizer
from trunkline.speech.transcriber import Transcriber
from trunkline.speech.turns import EndOfTurn

FRAME = 160  # μ-law bytes in 20 ms
SPECULATE_AFTER_MS = 160  # as media.transcription does
UNFINISHED = (
    ("I'd like to order a", "large pizza with extra cheese."),
    ("My account number is", "four five two seven nine."),
    ("I was wondering if", "you could help me with my bill."),
    ("Can I get the", "chicken sandwich and a lemonade?"),
    ("So I think that", "the meeting should move to Friday."),
    ("Please send it to", "my office address instead."),
)
CONFIGS = ("webrtc-500", "silero", "silero+decode", "silero+text")


def trimmed(ulaw: bytes) -> bytes:
    level = np.abs(np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2").astype(np.int32))
    audible = np.nonzero(level > 300)[0]
    return ulaw[audible[0] : audible[-1] + 1]


def framed(ulaw: bytes, lead_ms: int = 400, tail_ms: int = 1500) -> list[bytes]:
    body = ulaw + b"\xff" * (-len(ulaw) % FRAME)
    return (
        [b"\xff" * FRAME] * (lead_ms // 20)
        + [body[i : i + FRAME] for i in range(0, len(body), FRAME)]
        + [b"\xff" * FRAME] * (tail_ms // 20)
    )


class Decoder:
    """The recognizer on one thread, each distinct audio decoded once; times kept per audio."""

    def __init__(self, engine: Transcriber) -> None:
        self.engine = engine
        self._done: dict[bytes, tuple[str, float]] = {}

    def decode(self, pcm: bytes) -> tuple[str, float]:
        if pcm not in self._done:
            started = time.perf_counter()
            text = self.engine.transcribe(pcm)
            self._done[pcm] = (text, (time.perf_counter() - started) * 1000)
        return self._done[pcm]


class DecodeAhead:
    """The partial as a call sees it: the pause's decoding, visible once it would be done."""

    def __init__(self, decoder: Decoder, *, instant: bool = False) -> None:
        self.decoder = decoder
        self.instant = instant
        self.segmenter: SpeechSegmenter | None = None
        self.started: dict[int, tuple[int, str, float]] = {}  # voiced bytes: (at ms, text, ms)

    def tick(self) -> None:
        segmenter = self.segmenter
        assert segmenter is not None
        if segmenter.silence_ms == SPECULATE_AFTER_MS and not self._busy():
            audio = segmenter.voiced_audio
            text, took = self.decoder.decode(audio)
            self.started[len(audio)] = (segmenter.position_ms, text, 0.0 if self.instant else took)

    def _busy(self) -> bool:
        position = self.segmenter.position_ms if self.segmenter is not None else 0
        return any(at + took > position for at, _, took in self.started.values())

    def __call__(self) -> str | None:
        assert self.segmenter is not None
        found = self.started.get(self.segmenter.voiced_bytes)
        if found is None or found[0] + found[2] > self.segmenter.position_ms:
            return None
        return found[1]


def run_turns(
    ulaw_frames: list[bytes], config: str, model: SileroModel, decoder: Decoder
) -> list[tuple[int, Utterance, float]]:
    comma_trails = getattr(decoder.engine, "comma_trails", True)
    """(turn end in ms of audio, utterance, ms from turn end to its final) per turn."""
    ahead = (
        DecodeAhead(decoder, instant=config == "silero+text")
        if config.startswith("silero+")
        else None
    )
    if config == "webrtc-500":
        segmenter = SpeechSegmenter()
    else:
        segmenter = SpeechSegmenter(
            neural=SileroStream(model), turns=EndOfTurn(comma_trails=comma_trails), partial=ahead
        )
    if ahead is not None:
        ahead.segmenter = segmenter
    turns = []
    for frame in ulaw_frames:
        event = segmenter.feed(ulaw_to_pcm16(frame))
        if isinstance(event, Utterance):
            ended = segmenter.position_ms
            early = ahead.started.get(len(event.pcm)) if ahead is not None else None
            if early is not None:
                at, _, took = early
                wait = max(0.0, at + took - ended)
            else:
                wait = decoder.decode(event.pcm)[1]
            turns.append((ended, event, wait))
        elif ahead is not None and segmenter.active:
            ahead.tick()
    return turns


def per_frame_ns(frames: list[bytes], feed: Callable[[bytes], object]) -> float:
    costs = []
    for frame in frames:
        started = time.perf_counter_ns()
        feed(frame)
        costs.append(time.perf_counter_ns() - started)
    return float(np.median(costs))


def frame_costs(speech: list[bytes], model: SileroModel, count: int) -> dict[str, float]:
    pcm = [ulaw_to_pcm16(frame) for frame in speech]
    pcm = (pcm * (count // max(1, len(pcm)) + 1))[:count]
    vad = webrtcvad.Vad(2)
    stream = SileroStream(model)
    guard = EchoGuard()
    for frame in pcm[:20]:
        guard.played(frame)
    echo_frames = pcm[5:] + pcm[:5]
    return {
        "webrtc_vad_us": per_frame_ns(pcm, lambda f: vad.is_speech(f, 8000)) / 1000,
        "silero_vad_us": per_frame_ns(pcm, stream.feed) / 1000,
        "echo_guard_judge_us": per_frame_ns(echo_frames, guard.is_echo) / 1000,
        "echo_guard_played_us": per_frame_ns(pcm, guard.played) / 1000,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    voice = PiperSynthesizer()
    window = settings_from({}).speech.transcription_window_seconds
    engine = engine_named(args.engine, window)
    print(f"loading the voice, {args.engine} and the Silero VAD ...", flush=True)
    voice.load()
    engine.load()
    engine.transcribe(WARM_UP_TONE)
    model = SileroModel()
    decoder = Decoder(engine)

    def speak(text: str) -> bytes:
        return trimmed(b"".join(voice.synthesize(text)))

    sentences = [speak(s) for s in CORPUS[: args.sentences]]
    decision: dict[str, list[float]] = {c: [] for c in CONFIGS}
    final: dict[str, list[float]] = {c: [] for c in CONFIGS}
    print(f"ending {len(sentences)} turns {len(CONFIGS)} ways ...", flush=True)
    for ulaw in sentences:
        speech_end = 400 + len(ulaw) / 8
        for config in CONFIGS:
            turns = run_turns(framed(ulaw), config, model, decoder)
            ended, _, wait = turns[-1]
            decision[config].append(ended - speech_end)
            final[config].append(ended - speech_end + wait)
    print(f"pausing {args.pause_ms} ms inside {len(UNFINISHED)} unfinished phrases ...", flush=True)
    splits = dict.fromkeys(CONFIGS, 0)
    silence = b"\xff" * (8 * args.pause_ms)
    for first, rest in UNFINISHED:
        ulaw = speak(first) + silence + speak(rest)
        for config in CONFIGS:
            splits[config] += len(run_turns(framed(ulaw), config, model, decoder)) - 1
    print(f"timing {args.frames} frames per part ...", flush=True)
    costs = frame_costs(framed(sentences[0], 0, 0), model, args.frames)
    return {
        "engine": args.engine,
        "utterances": len(sentences),
        "decision_ms": {c: summary(v) for c, v in decision.items()},
        "end_of_speech_to_final_ms": {c: summary(v) for c, v in final.items()},
        "split_turns": {"pause_ms": args.pause_ms, "phrases": len(UNFINISHED), **splits},
        "per_frame": costs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("moonshine", "whisper"),
                        default=str(settings_from({}).speech.transcription))  # fmt: skip
    parser.add_argument("--sentences", type=int, default=len(CORPUS))
    parser.add_argument("--pause-ms", type=int, default=350)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    results = run(args)
    rows = []
    for config in CONFIGS:
        d, f = results["decision_ms"][config], results["end_of_speech_to_final_ms"][config]
        rows.append(
            (config, d["p50"], d["p95"], f["p50"], f["p95"], results["split_turns"][config])
        )
    print_table(
        ["config", "decision p50", "decision p95", "final p50", "final p95", "split turns"],
        rows,
    )
    print_table(["per 20 ms frame", "median µs"], list(results["per_frame"].items()))
    if args.save:
        print(write_results("endpointing", results))


if __name__ == "__main__":
    main()
