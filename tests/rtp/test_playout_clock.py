"""Playout (re-framing, marks, clear, bounds) and the shared media clock."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from tests.fakes.clock import FakeLoop
from trunkline.media.clock import (
    MAX_CATCH_UP,
    READ_FIRST_SECONDS,
    SLOT_SECONDS,
    TICK_SECONDS,
    MediaClock,
)
from trunkline.media.playout import Playout


def test_chunks_are_reframed_and_marks_echo_after_their_audio() -> None:
    marks: list[str] = []
    playout = Playout(marks.append)
    playout.push(b"\x01" * 100)
    playout.push(b"\x02" * 300)  # 400 bytes: two frames, 80 bytes pending
    playout.mark("first")  # pads the pending 80 bytes into a third frame
    playout.push(b"\x03" * 160)
    playout.mark("second")
    frames = [playout.tick() for _ in range(3)]
    assert frames[0] == b"\x01" * 100 + b"\x02" * 60
    assert frames[2] == b"\x02" * 80 + b"\xff" * 80
    assert marks == ["first"]
    assert playout.tick() == b"\x03" * 160 and marks == ["first", "second"]
    assert playout.tick() is None


def test_large_chunks_lose_nothing() -> None:
    """An agent's chunk may hold many frames (a whole TTS sentence): all of them play."""
    playout = Playout(lambda name: None)
    playout.push(b"\x20" * 800)
    sentence = bytes(range(256)) * 250  # 64,000 bytes: 400 frames in one push
    playout.push(sentence)
    played = b"".join(iter(playout.tick, None))
    assert played == b"\x20" * 800 + sentence
    assert playout.dropped_frames == 0


def test_mark_with_nothing_queued_echoes_at_once() -> None:
    marks: list[str] = []
    playout = Playout(marks.append)
    playout.mark("now")
    assert marks == ["now"]


def test_clear_drops_audio_and_echoes_pending_marks() -> None:
    marks: list[str] = []
    playout = Playout(marks.append)
    playout.push(b"\x01" * 1600)
    playout.mark("a")
    playout.push(b"\x02" * 1600)
    playout.mark("b")
    playout.tick()
    playout.clear()
    assert marks == ["a", "b"] and playout.tick() is None and playout.backlog_frames == 0


def test_backlog_is_bounded_oldest_dropped() -> None:
    playout = Playout(lambda name: None, max_seconds=1.0)  # 50 frames
    for index in range(60):
        playout.push(bytes([index]) * 160)
    assert playout.backlog_frames == 50 and playout.dropped_frames == 10
    assert playout.tick() == bytes([10]) * 160


def test_push_says_how_many_frames_the_backlog_grew_by() -> None:
    """What the media session decides by: play one frame at once, pace a burst, or wait."""
    playout = Playout(lambda name: None, max_seconds=0.1)  # 5 frames
    assert playout.push(b"\x01" * 160) == 1
    assert playout.push(b"\x02" * 80) == 0  # half a frame: nothing to play yet
    assert playout.push(b"\x02" * 80) == 1
    assert playout.push(b"\x03" * 480) == 3
    assert playout.push(b"\x04" * 160) == 0  # full: the oldest frame made room for it
    assert playout.backlog_frames == 5 and playout.dropped_frames == 1
    assert playout.tick() == b"\x02" * 160


def test_clock_ticks_at_50_hz_for_every_subscriber() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop)
    counts = [0, 0]

    def first() -> None:
        counts[0] += 1

    def second() -> None:
        counts[1] += 1

    a = clock.subscribe(first)
    b = clock.subscribe(second)
    loop.advance(1.0)
    clock.unsubscribe(a)
    clock.unsubscribe(b)
    assert counts == [round(1.0 / TICK_SECONDS)] * 2
    assert clock.ticks == counts[0] and clock.late_ticks == clock.skipped_ticks == 0
    assert clock.subscribers == 0 and loop.pending == 0  # the timer stops with the last call


def test_each_subscriber_is_called_every_20_ms_in_its_own_slot() -> None:
    loop = FakeLoop(0.0)
    clock = MediaClock(loop)
    calls: dict[str, list[float]] = {"a": [], "b": []}
    clock.subscribe(lambda: calls["a"].append(loop.time()))
    loop.advance(SLOT_SECONDS * 1.5)  # "b" joins in the next slot
    clock.subscribe(lambda: calls["b"].append(loop.time()))
    loop.advance(0.1)
    for times in calls.values():
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        assert gaps and all(abs(gap - TICK_SECONDS) < 1e-9 for gap in gaps)
    assert abs(calls["b"][0] - calls["a"][0] - SLOT_SECONDS) < 1e-9  # spread over the frame


def test_a_failing_subscriber_is_removed_at_its_first_error_and_told_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop)
    ticks: list[int] = []
    calls: list[int] = []
    errors: list[Exception] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    before = metric_value("trunkline_media_tick_errors_total")
    clock.subscribe(broken, errors.append)
    handle = clock.subscribe(lambda: ticks.append(1))
    with caplog.at_level(logging.ERROR, logger="trunkline.clock"):
        loop.advance(0.2)
    assert len(ticks) == 10  # the others keep their cadence
    assert calls == [1] and [str(error) for error in errors] == ["boom"]
    assert clock.callback_errors == 1 and clock.subscribers == 1
    assert metric_value("trunkline_media_tick_errors_total") == before + 1
    assert caplog.records == []  # its handler was told; the clock logs nothing itself
    clock.unsubscribe(handle)


def test_a_failing_subscriber_without_a_handler_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop)

    def broken() -> None:
        raise RuntimeError("boom")

    clock.subscribe(broken)
    with caplog.at_level(logging.ERROR, logger="trunkline.clock"):
        loop.advance(1.0)  # 50 ticks
    assert len(caplog.records) == 1 and clock.callback_errors == 1
    assert clock.subscribers == 0 and loop.pending == 0  # the timer stopped with it


def test_a_subscriber_unsubscribed_by_another_in_its_slot_is_not_called() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop)
    called: list[str] = []
    second = 0

    def first() -> None:
        called.append("first")
        clock.unsubscribe(second)

    clock.subscribe(first)
    second = clock.subscribe(lambda: called.append("second"))
    loop.advance(SLOT_SECONDS)
    assert called == ["first"]


def metric_value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_stalled_loop_catches_up_then_skips() -> None:
    loop = FakeLoop(0.0)
    clock = MediaClock(loop)
    ticks: list[float] = []
    handle = clock.subscribe(lambda: ticks.append(loop.time()))
    loop.advance(0.05)  # slot 0 ran at 5, 25 and 45 ms
    assert len(ticks) == 3
    loop.stall(0.3025)  # the loop is blocked: 60 slots (15 frames) are missed
    loop.advance(0.0)
    assert len(ticks) == 3  # woken: the slots wait for the loop to read its sockets
    loop.advance(READ_FIRST_SECONDS)
    # Up to MAX_CATCH_UP frames are run at once; the other ten are skipped and counted.
    assert clock.late_ticks == 1 and clock.skipped_ticks == 10
    assert len(ticks) == 3 + MAX_CATCH_UP and set(ticks[3:]) == {0.3535}
    assert abs(clock.max_lateness - 0.2985) < 1e-9
    loop.advance(TICK_SECONDS)  # then the 20 ms cadence resumes, on the original grid
    assert len(ticks) == 4 + MAX_CATCH_UP
    clock.unsubscribe(handle)


def test_rephase_moves_a_talk_spurt_ahead_of_its_old_slot() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop)
    order: list[str] = []
    late = clock.subscribe(lambda: order.append("late"))
    talker = clock.subscribe(lambda: order.append("talker"))  # same slot, called after "late"
    assert clock.rephase(talker) == 0.0  # already in the slot that fires next
    loop.advance(SLOT_SECONDS)
    assert order == ["late", "talker"]
    # The clock has moved past their slot: the next is slot 1, three slots sooner than slot 0.
    earlier = clock.rephase(talker)
    assert abs(earlier - 3 * SLOT_SECONDS) < 1e-12
    loop.advance(SLOT_SECONDS)
    assert order == ["late", "talker", "talker"]  # now it goes first
    loop.advance(3 * SLOT_SECONDS)
    assert order == ["late", "talker", "talker", "late"]
    clock.unsubscribe(talker)
    clock.unsubscribe(late)
    assert clock.subscribers == 0


def test_place_puts_a_subscriber_a_chosen_number_of_slots_ahead() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop)
    calls: list[float] = []
    handle = clock.subscribe(lambda: calls.append(loop.time()))
    start = loop.time()
    assert clock.slots_before(handle) == 0  # subscribed into the slot that fires next
    loop.advance(0.0075)  # its slot ran at 5 ms; the next one is slot 1, at 10 ms
    assert calls == [start + SLOT_SECONDS]
    assert clock.slots_before(handle) == 3
    clock.place(handle, 2)  # two slots run first: it runs at 20 ms, 12.5 ms from now
    assert clock.slots_before(handle) == 2
    loop.advance(0.0125)
    assert calls[1] == pytest.approx(start + 0.020)
    loop.advance(TICK_SECONDS)  # and every 20 ms from there
    assert calls[2] == pytest.approx(start + 0.040) and len(calls) == 3
    clock.place(handle, 0)  # into the next slot (45 ms): 5 ms after its last call
    loop.advance(SLOT_SECONDS)
    assert calls[3] == pytest.approx(start + 0.045)
    clock.unsubscribe(handle)
