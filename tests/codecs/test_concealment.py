"""Packet-loss concealment: the last frame faded 6 dB per repeat, then codec-correct silence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trunkline.codecs.concealment import Concealer
from trunkline.codecs.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16

ENCODE = {"pcmu": pcm16_to_ulaw, "pcma": pcm16_to_alaw}
DECODE = {"pcmu": ulaw_to_pcm16, "pcma": alaw_to_pcm16}


def tone(law: str) -> bytes:
    t = np.arange(160) / 8000
    pcm = (12000 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()
    return ENCODE[law](pcm)


def rms(law: str, frame: bytes) -> float:
    samples = np.frombuffer(DECODE[law](frame), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


@pytest.mark.parametrize(("law", "silence"), [("pcmu", 0xFF), ("pcma", 0xD5)])
def test_repeats_fade_by_6_db_then_silence(law: str, silence: int) -> None:
    concealer = Concealer(law, fade_frames=3)  # type: ignore[arg-type]
    frame = tone(law)
    concealer.played(frame)
    levels = [rms(law, frame)]
    for _ in range(3):
        levels.append(rms(law, concealer.conceal()))
    for louder, quieter in zip(levels, levels[1:], strict=False):
        assert 20 * math.log10(louder / quieter) == pytest.approx(6.0, abs=0.5)
    assert concealer.conceal() == bytes([silence]) * 160
    assert (concealer.repeated, concealer.silenced, concealer.idle) == (3, 1, 0)


def test_a_real_frame_restarts_the_fade_from_itself() -> None:
    concealer = Concealer("pcmu")
    first, second = tone("pcmu"), bytes(range(160))
    concealer.played(first)
    concealer.conceal()
    concealer.played(second)
    faded = concealer.conceal()
    assert rms("pcmu", faded) == pytest.approx(rms("pcmu", second) / 2, rel=0.1)


def test_before_any_frame_concealment_is_quiet() -> None:
    concealer = Concealer("pcma")
    assert {concealer.conceal() for _ in range(5)} == {b"\xd5" * 160}


def test_a_long_run_is_counted_as_idle_not_as_loss() -> None:
    concealer = Concealer("pcmu", fade_frames=3, idle_frames=50)
    concealer.played(tone("pcmu"))
    frames = [concealer.conceal() for _ in range(120)]
    assert frames[-1] == b"\xff" * 160
    assert (concealer.repeated, concealer.silenced, concealer.idle) == (3, 47, 70)
