"""Keyed token buckets: spending, refilling, peeking, and the bounded table."""

from __future__ import annotations

import pytest

from trunkline.ratelimit import KeyedBuckets


def test_a_key_spends_its_burst_then_refills_at_the_rate() -> None:
    buckets = KeyedBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 0.0).allowed for _ in range(4)] == [True, True, True, False]
    assert buckets.refused == 1
    refusal = buckets.take("a", 0.0)
    assert refusal.retry_after == pytest.approx(0.5)
    assert buckets.take("a", 0.5).allowed
    assert buckets.take("b", 0.5).remaining == 2  # another key has its own bucket


def test_peek_neither_spends_nor_counts_nor_remembers() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=1)
    assert buckets.peek("a", 0.0).allowed
    assert "a" not in buckets and len(buckets) == 0
    buckets.take("a", 0.0)
    decision = buckets.peek("a", 0.0)
    assert not decision.allowed and decision.retry_after == pytest.approx(1.0)
    assert buckets.refused == 0
    assert buckets.peek("a", 1.0).allowed


def test_the_table_forgets_the_least_recently_used_key_and_counts_it() -> None:
    forgotten: list[int] = []
    buckets = KeyedBuckets(rate=1.0, burst=5, max_keys=2, on_evict=lambda: forgotten.append(1))
    buckets.take("a", 0.0)
    buckets.take("b", 0.0)
    buckets.take("a", 0.0)  # a is now the most recent
    buckets.take("c", 0.0)
    assert ("a" in buckets, "b" in buckets, "c" in buckets) == (True, False, True)
    assert len(buckets) == 2
    assert buckets.evicted == 1 and forgotten == [1]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        KeyedBuckets(rate=0.0, burst=1)
    with pytest.raises(ValueError):
        KeyedBuckets(rate=1.0, burst=1, max_keys=0)
