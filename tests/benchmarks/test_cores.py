"""Core split for the media benchmarks: the measured process gets its own cores."""

from __future__ import annotations

import pytest

from benchmarks import _cores


def test_the_system_under_test_gets_its_cores_and_the_caller_moves_to_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pinned: list[tuple[int, set[int]]] = []
    monkeypatch.setattr(_cores.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(
        _cores.os, "sched_setaffinity", lambda pid, cpus: pinned.append((pid, cpus))
    )
    split = _cores.split_cores(2)
    assert split is not None
    assert (split.system, split.generators) == ((0, 1), (2, 3))
    assert pinned == [(0, {2, 3})]  # this process (and the generators it starts)
    split.pin_system()()
    split.repin_system([41, 42])
    assert pinned[1:] == [(0, {0, 1}), (41, {0, 1}), (42, {0, 1})]


def test_at_least_one_core_is_left_to_the_load_generators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cores.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(_cores.os, "sched_setaffinity", lambda pid, cpus: None)
    split = _cores.split_cores(4)
    assert split is not None
    assert split.describe() == {"system_under_test": [0], "load_generators": [1]}


def test_one_core_is_not_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cores.os, "sched_getaffinity", lambda pid: {0})
    assert _cores.split_cores(1) is None
