"""Fake time for media tests: a settable monotonic clock and an event loop's timers without sleeping.

``FakeClock`` is a ``Callable[[], float]`` of monotonic seconds that moves
only when told. ``FakeLoop`` has the two calls the media clock uses from an
event loop (``time`` and ``call_at``): ``advance`` runs the timers that fall
due, in order, each at its own time; ``stall`` moves time without running
them, as a loop blocked by slow work would.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._timers: list[tuple[float, int, Callable[[], object], FakeTimer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer()
        heapq.heappush(self._timers, (when, next(self._order), callback, timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, running every timer that falls due at its time."""
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until + 1e-12:
            when, _, callback, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.now = max(self.now, when)
            callback()
        self.now = until

    def stall(self, seconds: float) -> None:
        """Time passes while the loop is blocked: no timer runs."""
        self.now += seconds

    @property
    def pending(self) -> int:
        return sum(1 for *_, timer in self._timers if not timer.cancelled)
