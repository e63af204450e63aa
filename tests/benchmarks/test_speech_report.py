"""benchmarks.report's speech section says which targets the figures meet and which they miss."""

from __future__ import annotations

from typing import Any

from benchmarks.report import speech_section, speech_targets
from benchmarks.speech import TARGETS


def result(**median: Any) -> dict[str, Any]:
    figures = {
        "one_call_p50_ms": 450.0,
        "one_call_p95_ms": 700.0,
        "concurrency_p50_ms": 2500.0,
        "concurrency_p95_ms": None,  # no final came back
        "tts_first_audio_p50_ms": 250.0,
        "transcribed_calls_per_core": 4,
    }
    figures.update(median)
    wer = {"clean": 0.09, "20 dB SNR": 0.2}
    return {
        "measured_at": "2026-12-02T12:00:00+00:00",
        "machine": {"cpus": 2, "machine": "x86_64", "implementation": "CPython", "python": "3.11"},
        "engines": {"transcription": "whisper tiny.en"},
        "runs_count": 3,
        "commit": "0123456789abcdef",
        "command": "python -m benchmarks.speech",
        "live": {"concurrency": 15, "partial_ms": 400, "batch": 8, "max_p95_ms": 800},
        "word_error_rate": {
            "synthetic": {"word_error_rate": 0.03, "words": 298},
            "human": {
                "conditions": {k: {"word_error_rate": v, "words": 93} for k, v in wer.items()}
            },
        },
        "median": figures,
        "targets": TARGETS,
    }


def test_each_target_is_met_or_missed_by_its_figure() -> None:
    met, missed = speech_targets(result())
    assert met == ["final p50 at 1 call", "final p95 at 1 call", "first audio p50",
                   "WER clean real speech"]  # fmt: skip
    assert missed == ["final p50 at the stated concurrency", "final p95 at the stated concurrency",
                      "WER real speech at 20 dB", "calls per core"]  # fmt: skip


def test_a_figure_just_at_its_target_meets_it() -> None:
    met, _ = speech_targets(result(one_call_p50_ms=500.0, transcribed_calls_per_core=15))
    assert "final p50 at 1 call" in met and "calls per core" in met


def test_the_section_names_commit_command_and_verdict() -> None:
    text = speech_section(result())
    assert "Commit `0123456`, `python -m benchmarks.speech`" in text
    assert "Not met: final p50 at the stated concurrency" in text
