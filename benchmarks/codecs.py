"""Codec cost per 20 ms frame, against a reference measured in the same run.

    python -m benchmarks.codecs [--rounds 7]

The reference is the ``audioop`` call where one exists (``ratecv`` for
resampling, whose quality is far lower) and a straightforward pure-Python
implementation otherwise. Each figure is the median of several rounds; the
ratio is reference time / trunkline time (above 1: trunkline is faster).
Batch rows convert 500 frames (10 s of audio) in one call, as recording and
transcription do. Results go to ``benchmarks/results/codecs.json``.
"""

from __future__ import annotations

import argparse
import struct
import timeit
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._report import median, print_table, write_results
from trunkline.codecs import (
    Reframer,
    StreamingResampler,
    alaw_to_pcm16,
    decode_event,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_alaw,
    ulaw_to_pcm16,
)
from trunkline.codecs.g711 import pcm16_to_ulaw_into, ulaw_to_pcm16_into

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

FRAME_SAMPLES = 160
BATCH_FRAMES = 500


def sample_audio(samples: int, rate: int = 8000) -> bytes:
    rng = np.random.default_rng(7)
    t = np.arange(samples) / rate
    wave = np.sin(2 * np.pi * 440 * t) * 9000 + rng.normal(0, 800, samples)
    return wave.astype("<i2").tobytes()


def per_call_ns(function: Callable[[], object], rounds: int, target_seconds: float = 0.15) -> float:
    timer = timeit.Timer(function)
    loops, elapsed = timer.autorange()
    loops = max(1, int(loops * target_seconds / max(elapsed, 1e-9)))
    return median([timer.timeit(loops) / loops * 1e9 for _ in range(rounds)])


def python_reframe(frame_size: int) -> Callable[[bytes], list[bytes]]:
    pending = b""

    def push(chunk: bytes) -> list[bytes]:
        nonlocal pending
        pending += chunk
        frames = []
        while len(pending) >= frame_size:
            frames.append(pending[:frame_size])
            pending = pending[frame_size:]
        return frames

    return push


def python_dtmf(payload: bytes) -> tuple[str, bool, int, int]:
    event, flags, duration = struct.unpack("!BBH", payload)
    return "0123456789*#ABCD"[event], bool(flags & 0x80), flags & 0x3F, duration


def operations() -> list[tuple[str, int, Callable[[], object], Callable[[], object]]]:
    """(name, frames per call, trunkline, reference)."""
    pcm = sample_audio(FRAME_SAMPLES)
    ulaw = audioop.lin2ulaw(pcm, 2)
    alaw = audioop.lin2alaw(pcm, 2)
    batch_pcm = sample_audio(FRAME_SAMPLES * BATCH_FRAMES)
    batch_ulaw = audioop.lin2ulaw(batch_pcm, 2)
    codes = np.frombuffer(ulaw, dtype=np.uint8)
    samples = np.frombuffer(pcm, dtype="<i2")
    pcm_out = np.empty(FRAME_SAMPLES, dtype=np.int16)
    codes_out = np.empty(FRAME_SAMPLES, dtype=np.uint8)
    pcm16k = sample_audio(FRAME_SAMPLES * 2, 16000)

    up = StreamingResampler(8000, 16000)
    down = StreamingResampler(16000, 8000)
    up48 = StreamingResampler(8000, 48000)
    state: dict[str, Any] = {"up": None, "down": None, "up48": None}

    def ratecv(key: str, data: bytes, src: int, dst: int) -> bytes:
        out, state[key] = audioop.ratecv(data, 2, 1, src, dst, state[key])
        return out

    reframer = Reframer(FRAME_SAMPLES)
    reference_reframe = python_reframe(FRAME_SAMPLES)
    chunk = ulaw[:97]
    event = bytes([5, 0x8A, 0x03, 0x20])
    return [
        ("ulaw decode", 1, lambda: ulaw_to_pcm16(ulaw), lambda: audioop.ulaw2lin(ulaw, 2)),
        ("ulaw encode", 1, lambda: pcm16_to_ulaw(pcm), lambda: audioop.lin2ulaw(pcm, 2)),
        ("alaw decode", 1, lambda: alaw_to_pcm16(alaw), lambda: audioop.alaw2lin(alaw, 2)),
        ("alaw encode", 1, lambda: pcm16_to_alaw(pcm), lambda: audioop.lin2alaw(pcm, 2)),
        (
            "ulaw decode into buffer",
            1,
            lambda: ulaw_to_pcm16_into(codes, pcm_out),
            lambda: audioop.ulaw2lin(ulaw, 2),
        ),
        (
            "ulaw encode into buffer",
            1,
            lambda: pcm16_to_ulaw_into(samples, codes_out),
            lambda: audioop.lin2ulaw(pcm, 2),
        ),
        (
            "ulaw -> alaw",
            1,
            lambda: ulaw_to_alaw(ulaw),
            lambda: audioop.lin2alaw(audioop.ulaw2lin(ulaw, 2), 2),
        ),
        (
            "ulaw decode, batch",
            BATCH_FRAMES,
            lambda: ulaw_to_pcm16(batch_ulaw),
            lambda: audioop.ulaw2lin(batch_ulaw, 2),
        ),
        (
            "ulaw encode, batch",
            BATCH_FRAMES,
            lambda: pcm16_to_ulaw(batch_pcm),
            lambda: audioop.lin2ulaw(batch_pcm, 2),
        ),
        (
            "resample 8k -> 16k",
            1,
            lambda: up.process(pcm),
            lambda: ratecv("up", pcm, 8000, 16000),
        ),
        (
            "resample 16k -> 8k",
            1,
            lambda: down.process(pcm16k),
            lambda: ratecv("down", pcm16k, 16000, 8000),
        ),
        (
            "resample 8k -> 48k",
            1,
            lambda: up48.process(pcm),
            lambda: ratecv("up48", pcm, 8000, 48000),
        ),
        (
            "reframe 97-byte chunks",
            97 / 160,
            lambda: reframer.push(chunk),
            lambda: reference_reframe(chunk),
        ),
        ("dtmf decode", 1, lambda: decode_event(event), lambda: python_dtmf(event)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows, results = [], []
    for name, frames, ours, reference in operations():
        ours_ns = per_call_ns(ours, args.rounds) / frames
        reference_ns = per_call_ns(reference, args.rounds) / frames
        ratio = reference_ns / ours_ns
        rows.append([name, ours_ns, reference_ns, ratio])
        results.append(
            {
                "operation": name,
                "trunkline_ns_per_frame": ours_ns,
                "reference_ns_per_frame": reference_ns,
                "reference_over_trunkline": ratio,
            }
        )
    print_table(["operation", "trunkline ns/frame", "reference ns/frame", "ratio"], rows)
    write_results(
        "codecs",
        {"frame": "20 ms at 8 kHz (160 samples)", "rounds": args.rounds, "operations": results},
    )


if __name__ == "__main__":
    main()
