"""One shared 20 ms media tick per event loop.

Every call's playout subscribes a callback; one ``loop.call_at`` timer calls
them all in a single pass. Deadlines advance by exactly 20 ms from the start
(never "now + 20 ms"), so the tick does not drift. When the loop stalls, the
missed ticks are delivered at once up to ``MAX_CATCH_UP`` (audio timing is
preserved); beyond that they are skipped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

TICK_SECONDS = 0.020
MAX_CATCH_UP = 5

log = logging.getLogger("trunkline.clock")
TickCallback = Callable[[], None]


class MediaClock:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._subscribers: dict[int, TickCallback] = {}
        self._next_id = 0
        self._deadline = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self.ticks = 0
        self.late_ticks = 0
        self.skipped_ticks = 0
        self.callback_errors = 0
        self.max_lateness = 0.0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, callback: TickCallback) -> int:
        handle = self._next_id
        self._next_id += 1
        self._subscribers[handle] = callback
        if self._handle is None:
            loop = self._loop or asyncio.get_running_loop()
            self._loop = loop
            self._deadline = loop.time() + TICK_SECONDS
            self._handle = loop.call_at(self._deadline, self._tick)
        return handle

    def unsubscribe(self, handle: int) -> None:
        self._subscribers.pop(handle, None)
        if not self._subscribers and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        lateness = now - self._deadline
        due = 1 + int(lateness // TICK_SECONDS) if lateness > 0 else 1
        if lateness > TICK_SECONDS / 2:
            self.late_ticks += 1
            self.max_lateness = max(self.max_lateness, lateness)
        if due > MAX_CATCH_UP:
            self.skipped_ticks += due - MAX_CATCH_UP
            self._deadline += (due - MAX_CATCH_UP) * TICK_SECONDS
            due = MAX_CATCH_UP
        for _ in range(due):
            self.ticks += 1
            for callback in list(self._subscribers.values()):
                try:
                    callback()
                except Exception:
                    self.callback_errors += 1
                    log.exception("media tick callback failed")
            self._deadline += TICK_SECONDS
        if self._subscribers:
            self._handle = loop.call_at(self._deadline, self._tick)
        else:
            self._handle = None
