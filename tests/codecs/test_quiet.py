"""A frame is quiet when no sample is louder than QUIET_PEAK, in either law."""

from __future__ import annotations

import numpy as np
import pytest

from trunkline.codecs.g711 import pcm16_to_alaw, pcm16_to_ulaw
from trunkline.codecs.quiet import QUIET_PEAK, quiet_test

ENCODE = {"pcmu": pcm16_to_ulaw, "pcma": pcm16_to_alaw}


def frame(law: str, peak: int, at: int = 80) -> memoryview:
    samples = np.zeros(160, dtype="<i2")
    samples[at] = peak
    return memoryview(ENCODE[law](samples.tobytes()))


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
def test_silence_and_line_noise_are_quiet(law: str) -> None:
    quiet = quiet_test(law)
    assert quiet(frame(law, 0))
    noise = np.random.default_rng(1).normal(0, 60, 160).clip(-300, 300).astype("<i2")
    assert quiet(memoryview(ENCODE[law](noise.tobytes())))  # about -50 dBFS


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
@pytest.mark.parametrize("at", [0, 80, 159])
def test_one_loud_sample_anywhere_makes_the_frame_loud(law: str, at: int) -> None:
    quiet = quiet_test(law)
    assert not quiet(frame(law, 4 * QUIET_PEAK, at))
    assert not quiet(frame(law, -4 * QUIET_PEAK, at))
    assert quiet(frame(law, QUIET_PEAK // 2, at))
