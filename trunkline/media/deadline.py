"""Where a frame's deadline sits on the media clock when frames go as they arrive.

A frame that can be sent the moment its audio arrives is sent then, and the
call's clock subscription for that direction becomes only its deadline: the
time after which a missing frame is made up (concealment, silence). The
deadline is placed ``DEADLINE_SLOTS`` of the clock's 5 ms slots after the
arrival that starts a stream or talk spurt, so it runs 10-15 ms after it: the
next frame may then come that much late, or 5-10 ms early, and still go as it
arrives. When the sender's clock drifts against ours, the arrivals creep
towards the deadline or away from it: after ``DRIFT_FRAMES`` arrivals in a
row less than 5 ms or more than 15 ms before it, it is placed again.
"""

from __future__ import annotations

from trunkline.media.clock import SLOTS, MediaClock

DEADLINE_SLOTS = 2
IN_PLACE = (1, DEADLINE_SLOTS)  # slots before the deadline that leave it 5-15 ms away
DRIFT_FRAMES = 10


class ArrivalDeadline:
    """Keeps one clock subscription just after the arrivals of the frames it is due for."""

    __slots__ = ("_clock", "_off", "_placed")

    def __init__(self, clock: MediaClock) -> None:
        self._clock = clock
        self._placed = False
        self._off = 0  # arrivals in a row with the deadline out of place

    def arrived(self, handle: int, *, restart: bool = False) -> float:
        """A frame went as it arrived; ``restart``: it starts a stream or talk spurt.

        Returns how much sooner than the subscription would have run the frame
        went, in seconds, when the deadline was placed now (else 0).
        """
        clock = self._clock
        if not restart and self._placed:
            # clock.slots_before(handle), inline: this runs for every frame
            if (clock.slot_of[handle] - clock.next_slot) % SLOTS in IN_PLACE:
                self._off = 0
                return 0.0
            self._off += 1
            if self._off < DRIFT_FRAMES:
                return 0.0
        sooner = clock.seconds_until(handle)
        clock.place(handle, DEADLINE_SLOTS)
        self._placed = True
        self._off = 0
        return sooner
