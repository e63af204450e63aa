"""Speech accuracy, latency and capacity with the embedded engines, through the parts calls use.

    python -m benchmarks.speech [--engine moonshine|whisper] [--runs 3] [--concurrency 15]
                                [--trial-seconds 30] [--max-p95-ms 800] [--allow-uncommitted]

The engine measured is the configured default (``--engine`` picks the other);
the word error rates and the CPU cost per second of speech of the other
embedded engine are measured in the same run, as the reference.

1. **Word error rate, synthetic voice**: each sentence of a fixed corpus is
   spoken by the bundled piper voice, carried as μ-law 8 kHz, cut out by the
   call's voice activity detector and transcribed by the engine.
2. **Word error rate, real human speech** (``benchmarks.human_speech``: a
   LibriVox reader and a CMU speaker) through a telephone line
   (``benchmarks.telephone``: 300–3400 Hz, 8 kHz, μ-law), clean and with
   white noise at 20 dB and 10 dB SNR. Both texts are normalised
   (``trunkline.speech.wer``) before words are compared.
3. **End of speech to final transcript** (p50/p95), measured live: N callers
   in real time (20 ms frames on one clock), each speaking a sentence then
   pausing as long (talking half the time, starts staggered), every frame
   decoded from μ-law and fed to the call's own ``Transcription`` (detector,
   partial passes at the configured cadence, local agreement, final pass)
   on shared batched workers. The clock starts at the last frame the
   detector heard voice in and stops when the ``transcript`` frame with
   ``is_final`` reaches the agent's send function: the detector's hang-over,
   queueing behind the other calls' finals and partials, and decoding are
   all in it.
4. **Transcribed calls per core**: the same live trial at growing N on one
   transcription worker (one thread, one core; the event loop and the media
   path run beside it). A step is carried when its final-latency p95 stays
   within ``--max-p95-ms``, no final was refused and at most one waits at
   the end; the figure is the largest step carried (no extrapolation).
5. **First text delta to first audio** (p50): a call's text-to-speech path
   (``SpeechOutput``) fed an agent reply as an LLM streams it (6 characters
   every 10 ms); the clock stops when the first synthesized audio reaches
   the call's playout.

Every timing figure is the median of ``--runs`` runs (each run's figures are
kept); word error rates are deterministic (greedy decoding) and measured
once. The result names the commit and command; uncommitted code is refused
unless ``--allow-uncommitted``. Results go to ``benchmarks/results/speech.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

from benchmarks import human_speech
from benchmarks._report import median, percentile, print_table, require_committed, write_results
from benchmarks.telephone import telephone_line
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.config import settings_from
from trunkline.media.barge_in import BargeIn
from trunkline.media.playout import Playout
from trunkline.media.speech_output import SpeechOutput
from trunkline.media.speech_work import SpeechWork
from trunkline.media.transcription import Transcription
from trunkline.speech.engines import SpeechEngines
from trunkline.speech.moonshine import MoonshineTranscriber
from trunkline.speech.segmenter import SpeechSegmenter, Utterance
from trunkline.speech.synthesizer import PiperSynthesizer
from trunkline.speech.transcriber import REPETITION_PENALTY, Transcriber, WhisperTranscriber
from trunkline.speech.wer import word_errors
from trunkline.speech.workers import SpeechWorkers

CORPUS = (
    "Good morning, I would like to book a table for four people.",
    "We will arrive at eight o'clock tonight.",
    "Can you tell me when the pharmacy closes on Saturday?",
    "My order number is four five two seven nine.",
    "I need to change the delivery address for my package.",
    "The heating in my apartment stopped working last night.",
    "Please call me back tomorrow morning about the invoice.",
    "Is the doctor available on Thursday afternoon?",
    "I would like to cancel my subscription.",
    "How much does it cost to ship a parcel to Canada?",
    "My flight was delayed and I missed the connection.",
    "Could you send the receipt to my email address?",
    "The internet connection keeps dropping every few minutes.",
    "I want to pay my bill with a credit card.",
    "Do you have any rooms available next weekend?",
    "The car makes a strange noise when I brake.",
    "I am calling about the job interview on Monday.",
    "Can I speak to someone in the billing department?",
    "My password does not work anymore.",
    "We need a plumber as soon as possible.",
    "What time does the next train leave for Boston?",
    "I would like to order two large pizzas for delivery.",
    "The package arrived damaged and the box was open.",
    "Please remind me of my appointment one day before.",
    "I have a question about my insurance policy.",
    "Is there parking near the restaurant?",
    "The printer in the office is out of paper.",
    "Thank you very much for your help today.",
    "I would like to move my appointment to next week.",
    "Our meeting starts at half past ten in the main room.",
    "Can you confirm that the payment went through?",
    "The weather forecast says it will rain all afternoon.",
    "I lost my card and need a new one.",
    "Please leave the parcel with my neighbour.",
)
FRAME = 160
SILENCE = b"\xff" * FRAME
SPEECH_SHARE = 0.5
CONDITIONS: tuple[tuple[str, float | None], ...] = (("clean", None), ("20 dB SNR", 20.0),
                                                    ("10 dB SNR", 10.0))  # fmt: skip
RAMP = (1, 2, 4, 8, 12, 15, 20, 25, 30, 40)
TARGETS = {
    "end_of_speech_to_final_p50_ms": 500,
    "end_of_speech_to_final_p95_ms": 800,
    "tts_first_audio_p50_ms": 300,
    "word_error_rate_clean_human": 0.10,
    "word_error_rate_20db_human": 0.15,
    "transcribed_calls_per_core": 15,
}


def speak(voice: PiperSynthesizer, text: str) -> bytes:
    return b"".join(voice.synthesize(text))


def utterances_of(ulaw: bytes) -> list[Utterance]:
    """What the call's detector cuts out of ``ulaw`` (with silence around it)."""
    segmenter = SpeechSegmenter()
    padded = SILENCE * 15 + ulaw + b"\xff" * (-len(ulaw) % FRAME) + SILENCE * 60
    found: list[Utterance] = []
    for i in range(0, len(padded), FRAME):
        event = segmenter.feed(ulaw_to_pcm16(padded[i : i + FRAME]))
        if isinstance(event, Utterance):
            found.append(event)
    return found


def voice_end_frame(ulaw: bytes) -> int:
    """The frame of ``ulaw`` after the last one the detector heard voice in."""
    found = utterances_of(ulaw)
    return (found[-1].end_ms // 20 - 15) if found else len(ulaw) // FRAME


def score(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    errors = words = 0
    worst: list[tuple[float, str, str]] = []
    for said, heard in pairs:
        edits, count = word_errors(said, heard)
        errors += edits
        words += count
        worst.append((edits / max(1, count), said, heard))
    worst.sort(reverse=True)
    return {
        "utterances": len(pairs),
        "words": words,
        "word_error_rate": errors / max(1, words),
        "worst": [{"wer": w, "said": s, "heard": h} for w, s, h in worst[:3]],
    }


def synthetic_wer(sentences: list[str], audio: dict[str, bytes], engine: Transcriber
                  ) -> dict[str, Any]:  # fmt: skip
    pairs = []
    for sentence in sentences:
        pcm = b"".join(u.pcm for u in utterances_of(audio[sentence]))
        pairs.append((sentence, engine.transcribe(pcm)))
    return score(pairs)


def human_wer(engine: Transcriber) -> dict[str, Any]:
    """Word error rate on real human speech through a phone line, per condition, and the
    engine's CPU time per second of that speech (process time, one utterance at a time)."""
    if not human_speech.available():
        return {"error": "pocketsphinx-testdata is not installed"}
    clips = human_speech.clips()
    conditions: dict[str, Any] = {}
    cpu_seconds = audio_seconds = 0.0
    for label, snr in CONDITIONS:
        pairs = []
        for seed, clip in enumerate(clips):
            pcm = ulaw_to_pcm16(telephone_line(clip.pcm16, clip.rate, snr=snr, seed=seed))
            # The whole clip: this scores the recognizer, not the detector's cuts.
            started = time.process_time()
            pairs.append((clip.text, engine.transcribe(pcm)))
            cpu_seconds += time.process_time() - started
            audio_seconds += len(pcm) / 16000
        conditions[label] = score(pairs)
    return {
        "clips": [c.name for c in clips],
        "conditions": conditions,
        "cpu_ms_per_speech_second": cpu_seconds / audio_seconds * 1000,
    }


def engine_named(name: str, window_seconds: int) -> Transcriber:
    if name == "moonshine":
        return MoonshineTranscriber(threads=1)
    return WhisperTranscriber(threads=1, window_seconds=window_seconds)


def engine_description(name: str, window_seconds: int) -> str:
    if name == "moonshine":
        return "moonshine tiny (onnxruntime, 1 thread, greedy)"
    return (f"whisper tiny.en (int8, 1 thread, {window_seconds} s window, "
            f"repetition penalty {REPETITION_PENALTY})")  # fmt: skip


async def first_audio_latency(responses: list[str], engines: SpeechEngines) -> dict[str, float]:
    samples: list[float] = []
    loop = asyncio.get_running_loop()
    for text in responses:
        first: asyncio.Future[float] = loop.create_future()

        def play(audio: bytes, first: asyncio.Future[float] = first) -> None:
            if not first.done():
                first.set_result(time.perf_counter())

        async def store(party: Any, text: str, ts_ms: int) -> None:
            return None

        work = SpeechWork("bench", store)
        speech = SpeechOutput(
            engines.synthesizer,
            engines.synthesis,
            work,
            playout=Playout(lambda name: None),
            play=play,
        )
        speech.tts_mode = True
        started = time.perf_counter()
        for i in range(0, len(text), 6):
            speech.agent_text(text[i : i + 6], False)
            if first.done():
                break
            await asyncio.sleep(0.01)
        speech.agent_text("", True)
        samples.append((await first - started) * 1000)
        speech.close()
        await work.drained()
        await asyncio.sleep(0.3)  # let the rest of the reply finish synthesizing
    return {
        "p50": percentile(samples, 0.5),
        "p99": percentile(samples, 0.99),
        "count": len(samples),
    }


class _Caller:
    """One live caller: its stream, where its voice ends, its call's transcription."""

    def __init__(self, stream: bytes, voice_ends: list[int]) -> None:
        self.stream = stream
        self.voice_ends = voice_ends  # frame indexes, ascending
        self.answered = 0  # voice_ends[:answered] have had their final transcript
        self.transcription: Transcription | None = None


def caller_streams(calls: int, audio: list[bytes], seed: int) -> list[tuple[bytes, list[int]]]:
    """Each caller: sentences each followed by as long a pause, from a staggered start."""
    rng = random.Random(seed)
    ends = [voice_end_frame(a) for a in audio]
    streams = []
    for index in range(calls):
        parts = [SILENCE * rng.randrange(0, 150)]  # up to 3 s: callers do not speak in step
        frame = len(parts[0]) // FRAME
        voice_ends = []
        for k in range(len(audio)):
            which = (index * 7 + k) % len(audio)
            sentence = audio[which] + b"\xff" * (-len(audio[which]) % FRAME)
            voice_ends.append(frame + ends[which])
            parts += [sentence, b"\xff" * len(sentence)]
            frame += 2 * len(sentence) // FRAME
        streams.append((b"".join(parts), voice_ends))
    return streams


async def live_trial(
    calls: int,
    seconds: float,
    audio: list[bytes],
    engine: Transcriber,
    *,
    workers: int,
    batch: int,
    partial_ms: int,
    seed: int,
) -> dict[str, Any]:
    """``calls`` callers in real time, each through its own ``Transcription``, shared workers."""
    pool = SpeechWorkers("bench-live", threads=workers, max_queued=256, max_batch=batch)
    synthesis = SpeechWorkers("bench-live-tts", threads=1, max_queued=4)
    frames = int(seconds * 50)
    fed_at = [0.0] * (frames + 1)  # when each tick's frames were fed
    tick = 0
    latencies: list[float] = []
    finals = partials = 0
    callers = [_Caller(s, e) for s, e in caller_streams(calls, audio, seed)]

    async def store(party: Any, text: str, ts_ms: int) -> None:
        return None

    def sender(caller: _Caller) -> Any:
        def send(frame: str) -> None:
            nonlocal finals, partials
            if '"is_final":true' not in frame:
                partials += 1
                return
            finals += 1
            # The earliest sentence not yet answered whose voice has ended (a sentence the
            # detector cut in two is answered by its second part's final).
            ended = [e for e in caller.voice_ends[caller.answered :] if e <= tick]
            if ended:
                caller.answered = caller.voice_ends.index(ended[0]) + 1
                latencies.append(time.perf_counter() - fed_at[max(0, ended[0] - 1)])

        return send

    for index, caller in enumerate(callers):
        work = SpeechWork(f"bench-{index}", store)
        playout = Playout(lambda name: None)
        output = SpeechOutput(None, synthesis, work, playout=playout, play=lambda audio: None)
        send = sender(caller)
        transcription = Transcription(
            engine, pool, work, barge_in=BargeIn(playout, output, send), send_to_agent=send,
            partial_every_ms=partial_ms,
        )  # fmt: skip
        transcription.stt_mode = True
        transcription.agent_reports_transcripts()  # only the caller is transcribed
        caller.transcription = transcription
    start = time.perf_counter()
    lost = 0
    try:
        for tick in range(frames):
            offset = tick * FRAME
            fed_at[tick] = time.perf_counter()
            for caller in callers:
                chunk = caller.stream[offset : offset + FRAME] or SILENCE
                assert caller.transcription is not None
                caller.transcription.caller_frame(ulaw_to_pcm16(chunk))
            delay = start + (tick + 1) * 0.02 - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))
        backlog = pool.queued
        lost = sum(c.transcription.utterances_lost for c in callers if c.transcription)
    finally:
        pool.stop(timeout=30)
        synthesis.stop()
    p95 = percentile(latencies, 0.95) * 1000 if latencies else None
    return {
        "calls": calls,
        "seconds": seconds,
        "finals": finals,
        "partials": partials,
        "partials_shed": pool.shed,
        "finals_refused": lost,
        "backlog_at_end": backlog,
        "end_of_speech_to_final_p50_ms": percentile(latencies, 0.5) * 1000 if latencies else None,
        "end_of_speech_to_final_p95_ms": p95,
    }


def carried(trial: dict[str, Any], max_p95_ms: float) -> bool:
    p95 = trial["end_of_speech_to_final_p95_ms"]
    return (
        p95 is not None
        and p95 <= max_p95_ms
        and trial["finals_refused"] == 0
        and trial["backlog_at_end"] <= 1
    )


async def one_run(
    args: argparse.Namespace, audio: list[bytes], engine: Transcriber,
    engines: SpeechEngines, responses: list[str], seed: int,
) -> dict[str, Any]:  # fmt: skip
    """One run of every timing figure."""
    live = {"workers": 1, "batch": args.batch, "partial_ms": args.partial_ms, "seed": seed}
    steps = sorted({1, args.concurrency, *[n for n in RAMP if n <= args.max_calls]})
    trials: list[dict[str, Any]] = []
    sustained = 0
    for calls in steps:
        print(f"  live trial: {calls} callers for {args.trial_seconds:.0f} s ...", flush=True)
        trial = await live_trial(calls, args.trial_seconds, audio, engine, **live)
        trials.append(trial)
        if carried(trial, args.max_p95_ms):
            sustained = max(sustained, calls)
        elif calls >= args.concurrency:
            break  # past the stated concurrency, the first step not carried ends the ramp
    print("  agent replies to first audio ...", flush=True)
    tts = await first_audio_latency(responses, engines)
    at = {t["calls"]: t for t in trials}
    return {
        "one_call": at[1],
        "stated_concurrency": at.get(args.concurrency),
        "transcribed_calls_per_core": sustained,
        "tts_first_audio_ms": tts,
        "trials": trials,
    }


def med(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return median(values) if values else None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    voice = PiperSynthesizer()
    engine = engine_named(args.engine, args.window_seconds)
    reference_name = "whisper" if args.engine == "moonshine" else "moonshine"
    reference = engine_named(reference_name, args.window_seconds)
    print("loading the voice and the models ...", flush=True)
    await asyncio.to_thread(voice.load)
    load_started = time.perf_counter()
    await asyncio.to_thread(engine.load)
    load_seconds = time.perf_counter() - load_started
    await asyncio.to_thread(reference.load)
    sentences = list(CORPUS[: args.sentences])
    audio = {s: await asyncio.to_thread(speak, voice, s) for s in sentences}
    print(f"word error rate: {len(sentences)} synthetic sentences, real speech ...", flush=True)
    synthetic = synthetic_wer(sentences, audio, engine)
    human = human_wer(engine)
    print(f"the same with {reference_name}, the reference ...", flush=True)
    reference_figures = {
        "engine": engine_description(reference_name, args.window_seconds),
        "synthetic": synthetic_wer(sentences, audio, reference),
        "human": human_wer(reference),
    }
    del reference
    engines = SpeechEngines(settings_from({"transcription": "off"}))
    responses = [f"{a} {b}" for a, b in zip(sentences, sentences[1:], strict=False)]
    runs: list[dict[str, Any]] = []
    try:
        for number in range(args.runs):
            print(f"run {number + 1} of {args.runs}:", flush=True)
            runs.append(await one_run(args, list(audio.values()), engine, engines,
                                      responses[: args.responses], seed=number))  # fmt: skip
    finally:
        engines.stop()
    return {
        "engines": {
            "transcription": engine_description(args.engine, args.window_seconds),
            "speech": "piper joe",
        },
        "engine_load_seconds": load_seconds,
        "runs_count": args.runs,
        "live": {
            "concurrency": args.concurrency,
            "trial_seconds": args.trial_seconds,
            "speech_share": SPEECH_SHARE,
            "transcription_workers": 1,
            "batch": args.batch,
            "partial_ms": args.partial_ms,
            "max_p95_ms": args.max_p95_ms,
        },
        "word_error_rate": {"synthetic": synthetic, "human": human},
        "reference": reference_figures,
        "median": {
            "one_call_p50_ms": med(runs, "one_call", "end_of_speech_to_final_p50_ms"),
            "one_call_p95_ms": med(runs, "one_call", "end_of_speech_to_final_p95_ms"),
            "concurrency_p50_ms": med(runs, "stated_concurrency", "end_of_speech_to_final_p50_ms"),
            "concurrency_p95_ms": med(runs, "stated_concurrency", "end_of_speech_to_final_p95_ms"),
            "tts_first_audio_p50_ms": med(runs, "tts_first_audio_ms", "p50"),
            "transcribed_calls_per_core": med(runs, "transcribed_calls_per_core"),
        },
        "runs": runs,
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("moonshine", "whisper"),
                        default=str(settings_from({}).speech.transcription),
                        help="the embedded engine measured (the other is the reference)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="timing runs (figures: median)")
    parser.add_argument("--sentences", type=int, default=len(CORPUS))
    parser.add_argument("--responses", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=15, help="the stated concurrency")
    parser.add_argument("--max-calls", type=int, default=40, help="where the ramp stops")
    parser.add_argument("--trial-seconds", type=float, default=30.0)
    parser.add_argument("--max-p95-ms", type=float, default=800.0,
                        help="final-latency p95 a ramp step must keep to count as carried")  # fmt: skip
    parser.add_argument("--batch", type=int, default=8, help="utterances per model call")
    parser.add_argument("--partial-ms", type=int, default=400, help="partial pass cadence")
    parser.add_argument("--window-seconds", type=int, help="Whisper window (default: setting)")
    parser.add_argument("--allow-uncommitted", action="store_true")
    args = parser.parse_args()
    if args.window_seconds is None:
        args.window_seconds = settings_from({}).speech.transcription_window_seconds
    require_committed(args.allow_uncommitted)
    results = asyncio.run(run(args))
    m = results["median"]
    rows: list[tuple[str, Any, str]] = [
        ("WER synthetic voice (%)",
         results["word_error_rate"]["synthetic"]["word_error_rate"] * 100, ""),
    ]  # fmt: skip
    for label, figures in results["word_error_rate"]["human"].get("conditions", {}).items():
        target = {"clean": "<= 10", "20 dB SNR": "<= 15"}.get(label, "")
        rows.append((f"WER human speech, {label} (%)", figures["word_error_rate"] * 100, target))
    n = args.concurrency
    rows += [
        ("end of speech -> final, 1 call p50 (ms)", m["one_call_p50_ms"], "<= 500"),
        ("end of speech -> final, 1 call p95 (ms)", m["one_call_p95_ms"], "<= 800"),
        (f"end of speech -> final, {n} calls p50 (ms)", m["concurrency_p50_ms"], "<= 500"),
        (f"end of speech -> final, {n} calls p95 (ms)", m["concurrency_p95_ms"], "<= 800"),
        ("first text -> first audio p50 (ms)", m["tts_first_audio_p50_ms"], "<= 300"),
        ("transcribed calls per core (carried)", m["transcribed_calls_per_core"], ">= 15"),
    ]
    for label, figures in results["reference"]["human"].get("conditions", {}).items():
        rows.append((f"  reference: WER human speech, {label} (%)",
                     figures["word_error_rate"] * 100, ""))  # fmt: skip
    cost = results["word_error_rate"]["human"].get("cpu_ms_per_speech_second")
    reference_cost = results["reference"]["human"].get("cpu_ms_per_speech_second")
    if cost and reference_cost:
        rows.append(("CPU ms per second of speech", cost, ""))
        rows.append(("  reference: CPU ms per second of speech", reference_cost, ""))
        rows.append(("  reference / engine, CPU", reference_cost / cost, ""))
    print_table(["figure (median of runs)", "value", "target"],
                [(a, "n/a" if b is None else b, c) for a, b, c in rows])  # fmt: skip
    write_results("speech", results)


if __name__ == "__main__":
    main()
