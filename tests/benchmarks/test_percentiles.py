"""The load carrier's percentiles by partial ordering are the nearest-rank percentiles."""

from __future__ import annotations

import random

import numpy as np
import pytest

from benchmarks._report import array_percentiles, percentile
from benchmarks.load import summary


@pytest.mark.parametrize("count", [1, 2, 3, 99, 100, 101, 1000, 12345])
def test_partial_ordering_agrees_with_sorting(count: int) -> None:
    rng = random.Random(count)
    samples = [rng.expovariate(1.0) for _ in range(count)]
    fractions = (0.0, 0.5, 0.9, 0.99, 1.0)
    expected = [percentile(samples, fraction) for fraction in fractions]
    assert array_percentiles(np.array(samples), fractions) == expected


def test_summary_takes_arrays_lists_and_nothing() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert summary(np.array(values)) == summary(values) == {"p50": 3.0, "p99": 5.0}
    assert summary(np.zeros(0)) == summary([]) == {"p50": None, "p99": None}


def test_the_input_is_left_as_it_was() -> None:
    samples = np.array([3.0, 1.0, 2.0])
    array_percentiles(samples, (0.5,))
    assert samples.tolist() == [3.0, 1.0, 2.0]
