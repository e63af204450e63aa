"""benchmarks.speech's live trial: callers talking half the time, and when a ramp step counts."""

from __future__ import annotations

from benchmarks.speech import FRAME, caller_streams, carried, voice_end_frame
from tests.media.voice import voiced_ulaw_frames

SILENCE = b"\xff" * FRAME


def test_callers_talk_half_the_time_from_staggered_starts() -> None:
    sentences = [b"".join(voiced_ulaw_frames(s)) + SILENCE * 10 for s in (1.0, 2.0, 1.5)]
    streams = caller_streams(4, sentences, seed=7)
    assert len({stream[: FRAME * 150].count(b"\xff") for stream, _ in streams}) > 1  # staggered
    for stream, voice_ends in streams:
        assert len(voice_ends) == 3 and voice_ends == sorted(voice_ends)
        lead = next(i for i in range(0, len(stream), FRAME) if stream[i : i + FRAME] != SILENCE)
        talking = sum(len(s) for s in sentences)
        assert abs((len(stream) - lead) - 2 * talking) < 3 * FRAME  # as much pause as speech
        for end in voice_ends:  # the frame after the detector's last voice is a quiet one
            assert stream[(end - 1) * FRAME : end * FRAME] != SILENCE


def test_the_voice_end_ignores_trailing_silence() -> None:
    voiced = b"".join(voiced_ulaw_frames(1.0))
    assert abs(voice_end_frame(voiced + SILENCE * 20) - len(voiced) // FRAME) <= 2


def test_a_step_is_carried_only_within_the_latency_and_with_every_final() -> None:
    step = {"end_of_speech_to_final_p95_ms": 700.0, "finals_refused": 0, "backlog_at_end": 0}
    assert carried(step, 800)
    assert not carried({**step, "end_of_speech_to_final_p95_ms": 900.0}, 800)
    assert not carried({**step, "finals_refused": 1}, 800)
    assert not carried({**step, "backlog_at_end": 2}, 800)
    assert not carried({**step, "end_of_speech_to_final_p95_ms": None}, 800)
