"""Which backlogs of agent audio are delay and which are pacing."""

from __future__ import annotations

from trunkline.media.standing import MAX_STANDING_FRAMES, STANDING_TICKS, StandingBacklog


def ticks(backlog: StandingBacklog, depths: list[int], *, arriving: bool = True) -> list[bool]:
    drained = []
    for depth in depths:
        if arriving:
            backlog.arrived()
        drained.append(backlog.drain_one(depth))
    return drained


def test_a_frame_queued_behind_a_real_time_stream_goes_after_the_standing_ticks() -> None:
    drained = ticks(StandingBacklog(), [1] * (STANDING_TICKS + 1))
    assert drained == [False] * STANDING_TICKS + [True]


def test_a_backlog_with_nothing_arriving_is_a_burst_and_is_paced() -> None:
    assert not any(ticks(StandingBacklog(), [1] * 20, arriving=False))


def test_a_growing_backlog_is_the_agent_sending_ahead() -> None:
    depths = [1, 2] * 20  # faster than real time: it grows every other tick
    assert not any(ticks(StandingBacklog(), [min(d, MAX_STANDING_FRAMES) for d in depths]))


def test_a_deep_backlog_is_the_agent_sending_ahead_on_purpose() -> None:
    assert not any(ticks(StandingBacklog(), [MAX_STANDING_FRAMES + 1] * 20))


def test_one_tick_without_an_arrival_starts_the_count_again() -> None:
    backlog = StandingBacklog()
    ticks(backlog, [1] * (STANDING_TICKS - 1))
    assert not backlog.drain_one(1)  # nothing arrived since the last tick
    assert ticks(backlog, [1] * STANDING_TICKS) == [False] * (STANDING_TICKS - 1) + [True]
