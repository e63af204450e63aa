"""Speech accuracy and latency with the embedded engines, through the parts calls use.

    python -m benchmarks.speech [--sentences 32] [--responses 16] [--trial-seconds 30]

1. **Word error rate**: each sentence of a fixed corpus is spoken by the
   bundled piper voice, carried as μ-law 8 kHz (what a phone line delivers),
   cut out by the call's voice activity detector and transcribed by the
   embedded Whisper model on one worker thread. WER = word edits / reference
   words over the whole corpus (target <= 10 %).
2. **Real-time factor** of transcription per worker (seconds of work per
   second of speech).
3. **End of speech to final transcript** (p50/p99): the detector's hang-over
   (the silence it waits for before it calls an utterance over) plus the
   worker's queueing and transcription time, measured per utterance.
4. **First text delta to first audio** (p50/p99, target p50 <= 300 ms): a
   call's text-to-speech path (``SpeechOutput``) fed an agent reply as an LLM
   streams it (6 characters every 10 ms); the clock stops when the first
   synthesized audio reaches the call's playout.
5. **Concurrent transcribed calls one core sustains**: first estimated as
   ``1 / (RTF x speech share)``, where the speech share is the fraction of call
   time one transcribed party speaks (0.5: the caller talks half the time);
   then trials run that many callers in real time on one worker (one thread)
   for ``--trial-seconds``, stepping down by a quarter until one keeps up (at
   most one utterance waiting at the end, latency p99 <= 2.5 s).

Results go to ``benchmarks/results/speech.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from benchmarks._report import percentile, print_table, write_results
from trunkline.codecs.g711 import ulaw_to_pcm16
from trunkline.config import settings_from
from trunkline.media.playout import Playout
from trunkline.media.speech_output import SpeechOutput
from trunkline.media.speech_work import SpeechWork
from trunkline.speech.engines import SpeechEngines
from trunkline.speech.segmenter import FRAME_BYTES, SpeechSegmenter, Utterance
from trunkline.speech.synthesizer import PiperSynthesizer
from trunkline.speech.transcriber import WhisperTranscriber
from trunkline.speech.wer import word_errors
from trunkline.speech.workers import URGENT, SpeechWorkers

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
SPEECH_SHARE = 0.5
MAX_TRIALS = 3
KEPT_UP_P99_MS = 2500.0


def kept_up(trial: dict[str, Any]) -> bool:
    """The worker kept pace: at most one utterance waiting at the end, p99 within bounds."""
    p99 = trial["latency_p99_ms"]
    return trial["backlog_at_end"] <= 1 and p99 is not None and p99 <= KEPT_UP_P99_MS


def speak(voice: PiperSynthesizer, text: str) -> bytes:
    return b"".join(voice.synthesize(text))


def utterances_of(ulaw: bytes) -> tuple[list[Utterance], list[int]]:
    """The detector's utterances, and for each the frames it waited after the last voice."""
    segmenter = SpeechSegmenter()
    padded = b"\xff" * 15 * FRAME + ulaw + b"\xff" * (-len(ulaw) % FRAME) + b"\xff" * 60 * FRAME
    found: list[Utterance] = []
    hangover: list[int] = []
    for i in range(0, len(padded), FRAME):
        event = segmenter.feed(ulaw_to_pcm16(padded[i : i + FRAME]))
        if isinstance(event, Utterance):
            found.append(event)
            hangover.append(segmenter.position_ms - event.end_ms)
    return found, hangover


def resolve(future: asyncio.Future[tuple[str, float]]) -> Any:
    """A worker's done-callback that settles ``future`` with (text, seconds of work)."""

    def finished(result: Any, error: BaseException | None, seconds: float) -> None:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result((str(result), seconds))

    return finished


async def transcribe_corpus(
    sentences: list[str], audio: dict[str, bytes], whisper: WhisperTranscriber
) -> dict[str, Any]:
    workers = SpeechWorkers("bench-transcription", threads=1, max_queued=64)
    errors = words = 0
    rtf: list[float] = []
    latency_ms: list[float] = []
    worst: list[tuple[float, str, str]] = []
    try:
        for sentence in sentences:
            utterances, hangovers = utterances_of(audio[sentence])
            pcm = b"".join(u.pcm for u in utterances)
            hangover_ms = hangovers[-1] if hangovers else 0
            done: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()
            submitted = time.perf_counter()
            workers.submit(URGENT, lambda pcm=pcm: whisper.transcribe(pcm), resolve(done))  # type: ignore[misc]
            text, seconds = await done
            latency_ms.append(hangover_ms + (time.perf_counter() - submitted) * 1000)
            rtf.append(seconds / max(0.02, len(pcm) / 16000))
            edits, count = word_errors(sentence, text)
            errors += edits
            words += count
            worst.append((edits / count, sentence, text))
    finally:
        workers.stop()
    worst.sort(reverse=True)
    return {
        "sentences": len(sentences),
        "words": words,
        "word_error_rate": errors / words,
        "rtf_p50": percentile(rtf, 0.5),
        "rtf_p90": percentile(rtf, 0.9),
        "end_of_speech_to_final_ms": {
            "p50": percentile(latency_ms, 0.5),
            "p99": percentile(latency_ms, 0.99),
        },
        "worst": [{"wer": w, "said": s, "heard": h} for w, s, h in worst[:5]],
    }


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


async def sustained_trial(
    calls: int, seconds: float, audio: list[bytes], whisper: WhisperTranscriber
) -> dict[str, Any]:
    """``calls`` callers speaking half the time, in real time, on one transcription worker."""
    workers = SpeechWorkers("bench-trial", threads=1, max_queued=10_000)
    segmenters = [SpeechSegmenter() for _ in range(calls)]
    # Each caller: sentence, then as long a pause, round robin through the corpus.
    streams: list[bytes] = []
    for index in range(calls):
        parts = []
        for k in range(len(audio)):
            sentence = audio[(index + k) % len(audio)]
            parts += [sentence, b"\xff" * len(sentence)]
        streams.append(b"".join(parts))
    latencies: list[float] = []
    pending: dict[int, float] = {}
    counter = 0

    def finished(key: int) -> Any:
        def done(result: Any, error: BaseException | None, seconds: float) -> None:
            latencies.append(time.perf_counter() - pending.pop(key))

        return done

    frames = int(seconds * 50)
    start = time.perf_counter()
    try:
        for tick in range(frames):
            offset = tick * FRAME
            for index, segmenter in enumerate(segmenters):
                chunk = streams[index][offset : offset + FRAME]
                event = segmenter.feed(ulaw_to_pcm16(chunk) if chunk else bytes(FRAME_BYTES))
                if isinstance(event, Utterance):
                    counter += 1
                    pending[counter] = time.perf_counter()
                    workers.submit(URGENT, lambda p=event.pcm: whisper.transcribe(p),
                                   finished(counter))  # fmt: skip
            delay = start + (tick + 1) * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        backlog = len(pending)
    finally:
        workers.stop(timeout=30)
    return {
        "calls": calls,
        "seconds": seconds,
        "utterances": counter,
        "transcribed": len(latencies),
        "backlog_at_end": backlog,
        "latency_p50_ms": percentile(latencies, 0.5) * 1000 if latencies else None,
        "latency_p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    voice = PiperSynthesizer()
    whisper = WhisperTranscriber(threads=1)
    print("loading the voice and the model ...", flush=True)
    load_started = time.perf_counter()
    await asyncio.to_thread(voice.load)
    await asyncio.to_thread(whisper.load)
    load_seconds = time.perf_counter() - load_started
    sentences = list(CORPUS[: args.sentences])
    audio = {s: await asyncio.to_thread(speak, voice, s) for s in sentences}
    print(f"transcribing {len(sentences)} sentences ...", flush=True)
    accuracy = await transcribe_corpus(sentences, audio, whisper)
    print(f"speaking {args.responses} agent replies ...", flush=True)
    settings = settings_from({"transcription": "off"})
    engines = SpeechEngines(settings)
    try:
        tts = await first_audio_latency(
            [f"{a} {b}" for a, b in zip(sentences, sentences[1:], strict=False)][: args.responses],
            engines,
        )
    finally:
        engines.stop()
    estimate = 1 / (accuracy["rtf_p50"] * SPEECH_SHARE)
    trials: list[dict[str, Any]] = []
    calls = max(1, int(estimate))
    sustained = 0
    for _ in range(MAX_TRIALS):
        print(f"real-time trial: {calls} transcribed callers for {args.trial_seconds:.0f} s ...")
        trial = await sustained_trial(calls, args.trial_seconds, list(audio.values()), whisper)
        trials.append(trial)
        if kept_up(trial):
            sustained = calls
            break
        if calls == 1:
            break
        calls = max(1, int(calls * 0.75))
    return {
        "engines": {"transcription": "whisper tiny.en (int8, 1 thread)", "speech": "piper joe"},
        "engine_load_seconds": load_seconds,
        "transcription": accuracy,
        "tts_first_audio_ms": tts,
        "speech_share": SPEECH_SHARE,
        "sustained_calls_per_core_estimate": estimate,
        "sustained_calls_per_core": sustained,
        "sustained_trials": trials,
        "targets": {"word_error_rate": 0.10, "tts_first_audio_p50_ms": 300},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=len(CORPUS))
    parser.add_argument("--responses", type=int, default=16)
    parser.add_argument("--trial-seconds", type=float, default=30.0)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    t = results["transcription"]
    trial = results["sustained_trials"][-1]
    print_table(
        ["figure", "value", "target"],
        [
            ("word error rate (%)", t["word_error_rate"] * 100, "<= 10"),
            ("transcription RTF p50 (1 worker)", t["rtf_p50"], ""),
            ("end of speech -> final p50 (ms)", t["end_of_speech_to_final_ms"]["p50"], ""),
            ("end of speech -> final p99 (ms)", t["end_of_speech_to_final_ms"]["p99"], ""),
            ("first text -> first audio p50 (ms)", results["tts_first_audio_ms"]["p50"], "<= 300"),
            ("first text -> first audio p99 (ms)", results["tts_first_audio_ms"]["p99"], ""),
            ("transcribed calls per core (est.)", results["sustained_calls_per_core_estimate"], ""),
            ("transcribed calls per core (trial)", results["sustained_calls_per_core"], ""),
            (
                f"trial at {trial['calls']} calls: latency p99 (ms)",
                trial["latency_p99_ms"] or 0.0,
                "",
            ),
            (f"trial at {trial['calls']} calls: backlog at end", trial["backlog_at_end"], ""),
        ],
    )
    write_results("speech", results)


if __name__ == "__main__":
    main()
