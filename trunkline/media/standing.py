"""Telling a standing backlog of agent audio from a burst the tick must pace.

Agent frames that arrive one at a time are played as they come, up to
``MAX_LEAD_FRAMES`` ahead of the playout's ticks. When a frame comes so early
that the lead is used up, it waits in the playout; if every later frame then
arrives on time, each goes in place of the one before it, and one frame stays
queued for the rest of the talk spurt — 20 ms more latency on everything the
agent says.

A burst the tick must pace (synthesized speech sent faster than real time)
looks different: the backlog is drained one frame per tick, and nothing
arrives in between, or it grows. A *standing* backlog is one that, for
``STANDING_TICKS`` ticks in a row, is at most ``MAX_STANDING_FRAMES`` deep, did
not grow, and had a frame arrive since the previous tick: the agent is
streaming in real time and the queue is pure delay. One frame of it is played
at that tick, on top of the tick's own, so the receiver gets the stream at
most ``MAX_STANDING_FRAMES`` frames sooner than the ticks would have sent it.
A deeper backlog is the agent's own choice to send ahead, and is paced.
"""

from __future__ import annotations

STANDING_TICKS = 5  # 100 ms of evidence before a queued frame is taken as delay
MAX_STANDING_FRAMES = 2


class StandingBacklog:
    """Watches the playout's backlog at each tick; says when one frame of it is delay."""

    __slots__ = ("_arrived", "_last", "_ticks")

    def __init__(self) -> None:
        self._arrived = False  # an agent frame arrived since the last tick
        self._last = 0  # the backlog the last tick left
        self._ticks = 0  # ticks in a row that left a standing backlog

    def arrived(self) -> None:
        """Agent audio was queued or played."""
        self._arrived = True

    def drain_one(self, backlog: int) -> bool:
        """A tick left ``backlog`` frames queued: True if one of them should go now."""
        standing = 0 < backlog <= MAX_STANDING_FRAMES and self._arrived and backlog <= self._last
        self._arrived = False
        if not standing:
            self._ticks = 0
            self._last = backlog
            return False
        self._ticks += 1
        if self._ticks < STANDING_TICKS:
            self._last = backlog
            return False
        self._ticks = 0
        self._last = backlog - 1
        return True
