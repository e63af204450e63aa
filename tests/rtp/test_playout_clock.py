"""Playout (re-framing, marks, clear, bounds) and the shared media clock."""

from __future__ import annotations

import asyncio
import time

from trunkline.media.clock import SLOT_SECONDS, TICK_SECONDS, MediaClock
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


async def test_clock_ticks_at_50_hz_for_every_subscriber() -> None:
    clock = MediaClock()
    counts = [0, 0]

    def first() -> None:
        counts[0] += 1

    def second() -> None:
        counts[1] += 1

    loop = asyncio.get_running_loop()
    begin = loop.time()
    a = clock.subscribe(first)
    b = clock.subscribe(second)
    await asyncio.sleep(1.0)
    elapsed = loop.time() - begin
    clock.unsubscribe(a)
    clock.unsubscribe(b)
    expected = elapsed / TICK_SECONDS
    assert counts[0] == counts[1]
    assert expected - 3 <= counts[0] + clock.skipped_ticks <= expected + 1
    assert clock.subscribers == 0


async def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    clock = MediaClock()
    ticks: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    clock.subscribe(broken)
    handle = clock.subscribe(lambda: ticks.append(1))
    await asyncio.sleep(0.2)
    clock.unsubscribe(handle)
    assert ticks and clock.callback_errors >= len(ticks)


async def test_a_stalled_loop_catches_up_then_skips() -> None:
    clock = MediaClock()
    ticks: list[float] = []
    handle = clock.subscribe(lambda: ticks.append(1))
    await asyncio.sleep(0.05)
    asyncio.get_running_loop().call_soon(time.sleep, 0.3)  # stall the loop: 15 ticks missed
    await asyncio.sleep(0.4)
    clock.unsubscribe(handle)
    assert clock.late_ticks >= 1 and clock.skipped_ticks >= 5


async def test_rephase_moves_a_talk_spurt_ahead_of_its_old_slot() -> None:
    clock = MediaClock()
    order: list[str] = []
    first = asyncio.Event()
    both = asyncio.Event()

    def tick(name: str) -> None:
        order.append(name)
        if order.count("late") == 1:
            first.set()
        if order.count("late") == 2:
            both.set()

    late = clock.subscribe(lambda: tick("late"))
    talker = clock.subscribe(lambda: tick("talker"))  # same slot, called after "late"
    assert clock.rephase(talker) == 0.0  # already in the slot that fires next
    await asyncio.wait_for(first.wait(), 2)
    await asyncio.sleep(SLOT_SECONDS * 1.2)  # the clock moves past their slot
    earlier = clock.rephase(talker)
    assert earlier in (SLOT_SECONDS, 2 * SLOT_SECONDS, 3 * SLOT_SECONDS)
    await asyncio.wait_for(both.wait(), 2)
    assert order[:2] == ["late", "talker"]
    second_round = order[2:]
    assert second_round.index("talker") < second_round.index("late")  # now it goes first
    clock.unsubscribe(talker)
    clock.unsubscribe(late)
    assert clock.subscribers == 0
