"""One shared media clock per event loop: every call gets a callback every 20 ms.

One ``loop.call_at`` timer fires every 5 ms and runs one of four *slots* in
turn; each call's playout is in one slot, so it is called every 20 ms and the
work of all calls is spread over the frame. A call that starts talking after
silence moves to the slot that fires next (``rephase``): its first frame
waits at most 5 ms for the clock instead of up to 20. A subscriber can also be
``place``-d a chosen number of slots ahead: a caller's frame deadline sits
10–15 ms after its packets arrive. Deadlines advance by
exactly 5 ms from the start (never "now + 5 ms"), so the clock does not
drift. When the loop stalls, missed slots are run at once up to
``MAX_CATCH_UP`` frames' worth (audio timing is preserved); beyond that they
are skipped and counted. They run a millisecond after the loop wakes, once it
has read what arrived during the stall: a caller frame that came is played,
not concealed at its deadline.

A subscriber that raises is removed at its first error — never called (nor
logged) 50 times a second — and counted in ``trunkline_media_tick_errors_total``;
its ``on_error`` callback (the call's media session, which ends the call) is told
once, or, without one, the error is logged once.

Time comes from the loop it runs on (``time`` and ``call_at``): in production
the running asyncio loop, in tests a fake loop whose time moves only when the
test says, so the clock is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from trunkline import metrics

TICK_SECONDS = 0.020  # one frame, per call
SLOTS = 4
SLOT_SECONDS = TICK_SECONDS / SLOTS
MAX_CATCH_UP = 5  # frames
# After a stall the slots due are run this long after waking, once the loop has read its
# sockets: a caller frame's deadline does not conceal audio that came during the stall.
READ_FIRST_SECONDS = 0.001

log = logging.getLogger("trunkline.clock")
TickCallback = Callable[[], None]
ErrorCallback = Callable[[Exception], None]


class Timer(Protocol):
    def cancel(self) -> None: ...


class TimerLoop(Protocol):
    """What the clock needs from an event loop: its time and a timer at a given time."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Timer: ...


class MediaClock:
    def __init__(self, loop: TimerLoop | None = None) -> None:
        self._loop = loop
        self._slots: list[dict[int, TickCallback]] = [{} for _ in range(SLOTS)]
        # Read-only outside the clock: a subscriber's slot, and the slot the timer runs
        # next (``slots_before``, computed in place where it runs for every frame).
        self.slot_of: dict[int, int] = {}
        self._on_error: dict[int, ErrorCallback] = {}
        self._next_id = 0
        self.next_slot = 0
        self._deadline = 0.0
        self._handle: Timer | None = None
        self._ticking = False  # inside _tick, which re-arms the timer itself when done
        self._read_first = False  # this run was put off after a stall: it runs now
        self.ticks = 0  # frames: every subscriber is called once per tick
        self.late_ticks = 0
        self.skipped_ticks = 0
        self.callback_errors = 0
        self.max_lateness = 0.0

    @property
    def subscribers(self) -> int:
        return len(self.slot_of)

    def subscribe(self, callback: TickCallback, on_error: ErrorCallback | None = None) -> int:
        """Call ``callback`` every 20 ms, first at the next slot (within 5 ms).

        Should it raise, it is unsubscribed and ``on_error`` gets the exception, once.
        """
        handle = self._next_id
        self._next_id += 1
        self._slots[self.next_slot][handle] = callback
        self.slot_of[handle] = self.next_slot
        if on_error is not None:
            self._on_error[handle] = on_error
        if self._handle is None and not self._ticking:
            loop: TimerLoop = self._loop or asyncio.get_running_loop()
            self._loop = loop
            self._deadline = loop.time() + SLOT_SECONDS
            self._handle = loop.call_at(self._deadline, self._tick)
        return handle

    def unsubscribe(self, handle: int) -> None:
        slot = self.slot_of.pop(handle, None)
        if slot is not None:
            self._slots[slot].pop(handle, None)
        self._on_error.pop(handle, None)
        if not self.slot_of and self._handle is not None and not self._ticking:
            self._handle.cancel()
            self._handle = None

    def rephase(self, handle: int) -> float:
        """Move a subscriber to the slot that fires next; returns how much sooner (seconds)."""
        slot = self.slot_of.get(handle)
        if slot is None or slot == self.next_slot:
            return 0.0
        callback = self._slots[slot].pop(handle)
        self._slots[self.next_slot][handle] = callback
        self.slot_of[handle] = self.next_slot
        return ((slot - self.next_slot) % SLOTS) * SLOT_SECONDS

    def slots_before(self, handle: int) -> int:
        """How many slots run before a subscriber's does: 0, it runs in the next slot."""
        return (self.slot_of[handle] - self.next_slot) % SLOTS

    def seconds_until(self, handle: int) -> float:
        """How long until a subscriber runs next (0 if its slot is overdue)."""
        loop = self._loop
        assert loop is not None
        wait = self.slots_before(handle) * SLOT_SECONDS + self._deadline - loop.time()
        return max(0.0, wait)

    def place(self, handle: int, slots_before: int) -> None:
        """Move a subscriber so that ``slots_before`` slots run before it does.

        It then runs within ``(slots_before + 1) × 5`` ms, and no sooner than
        ``slots_before × 5`` ms, from now.
        """
        slot = self.slot_of.get(handle)
        wanted = (self.next_slot + slots_before) % SLOTS
        if slot is None or slot == wanted:
            return
        self._slots[wanted][handle] = self._slots[slot].pop(handle)
        self.slot_of[handle] = wanted

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        lateness = now - self._deadline
        if lateness > SLOT_SECONDS and not self._read_first:
            # A stall: what came meanwhile is still unread (some event loops run due
            # timers before reading sockets). Run the slots once it has been read.
            metrics.LOOP_LAG.observe(lateness)
            self._read_first = True
            self._handle = loop.call_at(now + READ_FIRST_SECONDS, self._tick)
            return
        if self._read_first:
            self._read_first = False
        else:
            metrics.LOOP_LAG.observe(max(0.0, lateness))
        due = 1 + int(lateness // SLOT_SECONDS) if lateness > 0 else 1
        if lateness > SLOT_SECONDS:
            self.late_ticks += 1
            self.max_lateness = max(self.max_lateness, lateness)
        limit = MAX_CATCH_UP * SLOTS
        if due > limit:
            self.skipped_ticks += (due - limit) // SLOTS
            skipped = due - limit
            self._deadline += skipped * SLOT_SECONDS
            self.next_slot = (self.next_slot + skipped) % SLOTS
            due = limit
        self._ticking = True
        for _ in range(due):
            slot = self.next_slot
            if slot == 0:
                self.ticks += 1
            subscribers = self._slots[slot]
            for handle, callback in list(subscribers.items()):
                if handle not in subscribers:
                    continue  # unsubscribed by a callback earlier in this slot
                try:
                    callback()
                except Exception as exc:
                    self._failed(handle, exc)
            self.next_slot = (slot + 1) % SLOTS
            self._deadline += SLOT_SECONDS
        self._ticking = False
        if self.slot_of:
            self._handle = loop.call_at(self._deadline, self._tick)
        else:
            self._handle = None

    def _failed(self, handle: int, error: Exception) -> None:
        """A subscriber raised: remove it, count it, and say so once."""
        on_error = self._on_error.get(handle)
        self.unsubscribe(handle)
        self.callback_errors += 1
        metrics.MEDIA_TICK_ERRORS.inc()
        if on_error is None:
            log.error("media tick subscriber failed and was removed", exc_info=error)
            return
        try:
            on_error(error)
        except Exception:
            log.exception("media tick error handler failed")
