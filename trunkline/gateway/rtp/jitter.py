"""A re-ordering, adaptive jitter buffer for one call's inbound RTP audio, sans I/O.

Packets are ``push``-ed as they arrive and one 20 ms frame is ``pull``-ed per
tick of the shared media clock: no task, queue or timer of its own.

Storage is a fixed ring of ``SLOTS`` entries indexed by the *extended*
sequence number (the 16-bit number unwrapped against the newest one seen), so
the sequence wrap 65535 → 0 is just the next number; timestamps are compared
modulo 2³². A slot keeps a reference to the payload (a view of the received
datagram, never copied); a frame is assembled in one pre-sized buffer only
when packets are not 20 ms long (10 or 30 ms ptime), so any packet time is
re-framed into 20 ms frames.

Playing: the *cursor* is the next sequence number to play. Each pull takes
the packet at the cursor. If it is missing while later packets are here, its
time came: it is lost — concealed for as long as the timestamps say audio is
missing (counting the frames already concealed while waiting), then skipped.
If nothing at all is here, the buffer has run dry (an underrun): the pull
returns nothing, the cursor waits, and playing resumes once the target depth
is buffered again — or once audio has waited as many pulls as the target has
frames (a short burst is not held back longer than the target). A pull that returns None asks the caller for a
concealment frame (``codecs.concealment``) — except before the first frame of
the call was played: the cadence starts with the first packet.

On arrival (``on_arrival``): a frame need not wait for its tick. Right
after a push, ``pull_on_arrival`` plays the next frame at once if it is here,
in order, with the target depth of audio held behind it (with a target of 0:
the packet that just came, if it is the next one). That period's tick then
takes nothing (``due`` says so); the tick is only the frame's deadline, when
audio that has not come is concealed. Latency is then the target depth and
the network's, not the wait for a tick. Frames played on arrival may run up
to ``MAX_LEAD_FRAMES`` ahead of the ticks. The stream starts one frame ahead
(``START_LEAD_FRAMES``): a packet is concealed only once it is a whole frame
later than its deadline, at no cost in latency, since frames go as they come.
After a frame was concealed, the late packet and the next one both go as
they come, so the stream does not stay a frame behind, and the frame gained
is a cushion against the next late packet. A packet lost and concealed does
not hold back the packets after it either. (A packet that comes after its concealment therefore does not raise
the target here; one that comes after it was given up still does.) A frame
beyond the target is excess here (there is no tick phase to cover) and
shrinks away like any other.

Depth: the target, in 20 ms frames between ``min_frames`` and ``max_frames``,
follows the interarrival jitter estimate of RFC 3550 §6.4.1 (three times the
estimate, rounded to frames), and rises by a frame at once when a packet comes
too late (dropped late, or arriving after an underrun); that rise decays by one
frame every two seconds without lateness. When two frames or more beyond the
target have stayed buffered after every pull for a whole second, one frame is
dropped (``shrunk``): latency comes back down slowly. (One frame beyond the
target is kept: it is where the packets' phase falls against the 20 ms tick.)
Given a ``quiet`` test (``codecs.quiet``), the frame dropped is a quiet one: the
drop waits for the caller's next pause (while the excess lasts), so a word is
never cut to save 20 ms of delay — unless no pause came for
``SHRINK_PATIENCE_PULLS`` (a line whose noise never falls quiet).
More than ``max_frames`` + the frame being played left after every pull for
200 ms is trimmed back to that at once, oldest first (``overflow``), so the
delay the buffer adds stays at most ``max_frames`` × 20 ms (plus the wait for
the tick). A burst is held up to ``catch_up_frames`` more at arrival: after
the event loop stalled, the media clock plays that many frames at once, and
the burst it read on waking is what they are made of; beyond that the oldest
is dropped at once (``overflow``).

Dropped and counted: duplicates (of a held or an already played packet),
late packets (their slot was played or given up), overflow and shrink drops;
lost packets (given up on) and underruns are counted too. A new SSRC, or a
sequence jump beyond ``MAX_SEQUENCE_JUMP``, is a new stream: the buffer
starts again (``resets``). RFC 4733 events do not pass through here (their
digits are reported as they arrive), but they share the audio's sequence
numbers: ``push_event`` marks theirs so they are not taken for lost audio.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from trunkline import speedups

SLOTS = 64  # a power of two: 64 packets is 640 ms of 10 ms packets, far beyond any depth
_MASK = SLOTS - 1
_BASE = 1 << 20  # extended sequence numbers start here, so they stay positive
MAX_SEQUENCE_JUMP = 3000  # beyond this the sender restarted: a new stream
MAX_GAP_SAMPLES = 8000  # a timestamp gap beyond a second is a discontinuity, not loss
JITTER_MULTIPLE = 3  # the target covers three times the RFC 3550 jitter estimate
LATE_DECAY_PULLS = 100  # a rise caused by lateness fades by one frame per 2 s
SHRINK_WINDOW_PULLS = 50  # more than the target buffered for 1 s: drop a frame
SHRINK_PATIENCE_PULLS = 500  # no quiet frame for 10 s: the shrink drops a loud one
TRIM_PULLS = 10  # beyond the maximum for 200 ms: trimmed back to it at once
DEPTH_BUCKETS = (0, 1, 2, 3, 5, 10)  # frames; the histograms' upper bounds (then +Inf)
_BUCKET_OF = tuple(bisect.bisect_left(DEPTH_BUCKETS, f) for f in range(DEPTH_BUCKETS[-1] + 1))
_BUCKETS = len(_BUCKET_OF)  # depths the table covers
_OVER = len(DEPTH_BUCKETS)  # the +Inf bucket: any depth past the last bound
RETARGET_PULLS = 8  # the target follows the jitter estimate every 160 ms
MAX_LEAD_FRAMES = 3  # frames played on arrival may run this many ahead of their ticks
START_LEAD_FRAMES = 1  # the first frame played on arrival starts this many more ahead

_EMPTY, _HELD, _PLAYED, _MISSED = 0, 1, 2, 3


@dataclass(slots=True)
class JitterCounters:
    late: int = 0  # arrived after their slot was played or given up
    duplicate: int = 0
    overflow: int = 0  # dropped, oldest first, beyond the maximum depth
    shrunk: int = 0  # dropped to bring the depth back down to the target
    lost: int = 0  # never arrived in time: concealed
    underruns: int = 0  # pulls that found nothing buffered
    resets: int = 0  # new SSRC or sequence restart


class JitterReadings:
    """What both implementations read out the same way: counters and histograms by name."""

    __slots__ = ()
    counters: JitterCounters
    depth_histogram: list[int]
    target_histogram: list[int]
    depth_frames_sum: int
    target_frames_sum: int

    def counter_values(self) -> dict[str, int]:
        """Counters and histogram buckets as flat ``jitter_*`` names (summed per gateway)."""
        values = {f"jitter_{name}": value for name, value in asdict(self.counters).items()}
        for index, count in enumerate(self.depth_histogram):
            values[f"jitter_depth_bucket_{index}"] = count
        for index, count in enumerate(self.target_histogram):
            values[f"jitter_target_bucket_{index}"] = count
        values["jitter_depth_frames_sum"] = self.depth_frames_sum
        values["jitter_target_frames_sum"] = self.target_frames_sum
        return values


class PyJitterBuffer(JitterReadings):
    """One call's inbound audio, re-ordered and paced: push per packet, pull per 20 ms tick.

    The pure-Python twin of the C core (``trunkline/_jitter_core.c``); ``JitterBuffer``
    is whichever of the two ``trunkline.speedups`` chose."""

    __slots__ = (
        "_adapted",
        "_lead",
        "_credit",
        "_cursor",
        "_expected_ts",
        "_fill",
        "_fresh",
        "_held",
        "_held_bytes",
        "_highest",
        "_jitter",
        "_last_arrival",
        "_last_ts",
        "_late_floor",
        "_min_remaining",
        "_out",
        "_over_max",
        "_out_view",
        "_part",
        "_payload",
        "_quiet",
        "_seq",
        "_shrink_waited",
        "_since_late",
        "_ssrc",
        "_state",
        "_ts",
        "_waited",
        "_waiting",
        "_window",
        "catch_up_frames",
        "clock_rate",
        "counters",
        "depth_frames_sum",
        "depth_histogram",
        "frame_bytes",
        "max_frames",
        "min_frames",
        "on_arrival",
        "started",
        "target_frames",
        "target_frames_sum",
        "target_histogram",
    )

    def __init__(
        self,
        *,
        min_frames: int = 0,
        max_frames: int = 3,
        frame_bytes: int = 160,
        clock_rate: int = 8000,
        catch_up_frames: int = 5,
        quiet: Callable[[memoryview], bool] | None = None,
        on_arrival: bool = False,
    ) -> None:
        if max_frames < 1 or not 0 <= min_frames <= max_frames:
            raise ValueError("need 0 <= min_frames <= max_frames and max_frames >= 1")
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.frame_bytes = frame_bytes  # one byte per timestamp unit (G.711)
        self.clock_rate = clock_rate
        # Frames the media clock plays at once after the loop stalled: a burst read after a
        # stall is held for them rather than dropped.
        self.catch_up_frames = catch_up_frames
        # Whether a frame is a pause: only those are shrunk away (None: any frame is).
        self._quiet = quiet
        # Frames are played on arrival when they can be (``pull_on_arrival``); the tick is
        # their deadline. Excess over the target is then one frame, not two.
        self.on_arrival = on_arrival
        self._lead = 0  # frames played on arrival ahead of their periods' ticks
        self._adapted = False  # this period's target was set at an arrival
        self.counters = JitterCounters()
        self.target_frames = min_frames
        self.started = False  # a frame was played: from now on every pull yields a frame
        # Histograms of the depth (after each frame played) and of the target, in frames.
        self.depth_histogram = [0] * (len(DEPTH_BUCKETS) + 1)
        self.target_histogram = [0] * (len(DEPTH_BUCKETS) + 1)
        self.depth_frames_sum = self.target_frames_sum = 0
        self._seq = [-1] * SLOTS
        self._state = bytearray(SLOTS)
        self._payload: list[memoryview | None] = [None] * SLOTS
        self._ts = [0] * SLOTS
        self._out = bytearray(frame_bytes)
        self._out_view = memoryview(self._out)
        self._ssrc: int | None = None
        self._late_floor = 0
        self._since_late = 0
        self._clear()

    def _clear(self) -> None:
        """Forget the stream (kept: the target, the counters, whether the call started)."""
        state, payload = self._state, self._payload
        for slot in range(SLOTS):
            state[slot] = _EMPTY
            payload[slot] = None
        self._cursor = self._highest = 0
        self._held = self._held_bytes = 0
        self._fill = 0
        self._part: memoryview | None = None  # the unplayed rest of a longer packet
        self._expected_ts: int | None = None  # where the audio after the last played ends
        self._credit = 0  # samples concealed since the last packet was played
        self._waiting = True  # building up the target depth before playing
        self._waited = 0  # pulls spent waiting with audio held: at most the target
        self._fresh = True  # nothing played from this stream yet
        self._jitter = 0.0  # RFC 3550 interarrival jitter, timestamp units
        self._last_ts: int | None = None
        self._last_arrival = 0.0
        self._min_remaining = 1 << 30
        self._window = 0
        self._shrink_waited = -1  # pulls a due shrink has waited for a quiet frame; -1: none due
        self._over_max = 0  # pulls in a row that left more than the maximum buffered

    # -- arrival -----------------------------------------------------------------------
    def push(
        self, ssrc: int, sequence: int, timestamp: int, payload: memoryview, arrival: float
    ) -> None:
        """One audio packet; ``arrival`` in monotonic seconds."""
        if ssrc != self._ssrc:
            self._restart(ssrc, sequence)
        highest = self._highest  # ``_extend``, inline: once per packet
        delta = (sequence - highest) & 0xFFFF
        extended = highest + (delta - 0x10000 if delta >= 0x8000 else delta)
        ahead = extended - self._cursor
        if ahead < 0:
            if -ahead > MAX_SEQUENCE_JUMP:
                self._restart(ssrc, sequence)
                extended, ahead = self._cursor, 0
            elif self._fresh and -ahead < SLOTS - (self._highest - self._cursor):
                self._cursor = extended  # an earlier packet of a stream not yet played from
                ahead = 0
            else:
                self._too_late(extended)
                return
        elif ahead > MAX_SEQUENCE_JUMP:
            self._restart(ssrc, sequence)
            extended, ahead = self._cursor, 0
        slot = extended & _MASK
        if self._seq[slot] == extended and self._state[slot] == _HELD:
            self.counters.duplicate += 1
            return
        if ahead >= SLOTS:
            self._drop_until(extended - SLOTS + 1)
        # ``_measure``, inline: RFC 3550 §6.4.1, J += (|D| - J) / 16
        last_ts = self._last_ts
        if last_ts is not None:
            spacing = (timestamp - last_ts) & 0xFFFFFFFF
            if spacing >= 0x80000000:
                spacing -= 0x100000000
            change = abs((arrival - self._last_arrival) * self.clock_rate - spacing)
            if change < MAX_GAP_SAMPLES:  # not a timestamp jump
                self._jitter += (change - self._jitter) / 16
        self._last_ts = timestamp
        self._last_arrival = arrival
        self._hold(slot, extended, timestamp, payload)
        limit = (self.max_frames + 1 + self.catch_up_frames) * self.frame_bytes
        while self._held_bytes > limit:
            self._drop_oldest()

    def push_event(self, ssrc: int, sequence: int) -> None:
        """An RFC 4733 event packet's sequence number: not audio, and not lost audio either."""
        if ssrc != self._ssrc:
            return  # events never start or restart the audio stream
        extended = self._extend(sequence)
        ahead = extended - self._cursor
        slot = extended & _MASK
        if ahead < 0 or ahead >= SLOTS or self._seq[slot] == extended:
            return
        self._hold(slot, extended, 0, memoryview(b""))

    def _hold(self, slot: int, extended: int, timestamp: int, payload: memoryview) -> None:
        self._seq[slot] = extended
        self._state[slot] = _HELD
        self._payload[slot] = payload
        self._ts[slot] = timestamp
        self._held += 1
        self._held_bytes += len(payload)
        if extended > self._highest:
            self._highest = extended

    def _extend(self, sequence: int) -> int:
        delta = (sequence - self._highest) & 0xFFFF
        return self._highest + (delta - 0x10000 if delta >= 0x8000 else delta)

    def _restart(self, ssrc: int, sequence: int) -> None:
        if self._ssrc is not None:
            self.counters.resets += 1
        self._clear()
        self._ssrc = ssrc
        self._cursor = self._highest = _BASE + sequence

    def _too_late(self, extended: int) -> None:
        slot = extended & _MASK
        if self._seq[slot] == extended and self._state[slot] == _PLAYED:
            self.counters.duplicate += 1
        else:
            self.counters.late += 1
            self._grow()

    # -- drops -------------------------------------------------------------------------
    def _drop_oldest(self) -> None:
        """Drop the oldest held packet (overflow); missing ones before it count as lost."""
        while self._held:
            slot = self._cursor & _MASK
            self._cursor += 1
            if not self._present(slot, self._cursor - 1):
                self._give_up(slot, self._cursor - 1)
            elif self._consume(slot, played=False):
                self.counters.overflow += 1
                return

    def _drop_until(self, extended: int) -> None:
        """Move the cursor up to ``extended`` so a packet that far ahead fits the ring."""
        while self._cursor < extended:
            slot = self._cursor & _MASK
            if self._present(slot, self._cursor):
                if self._consume(slot, played=False):
                    self.counters.overflow += 1
            else:
                self._give_up(slot, self._cursor)
            self._cursor += 1

    def _give_up(self, slot: int, extended: int) -> None:
        self._seq[slot] = extended
        self._state[slot] = _MISSED
        self._payload[slot] = None
        self.counters.lost += 1

    def _consume(self, slot: int, *, played: bool) -> memoryview:
        """Take the held packet out of ``slot`` (the cursor has moved past it)."""
        payload = self._payload[slot]
        assert payload is not None
        self._payload[slot] = None
        self._state[slot] = _PLAYED  # a copy arriving later is a duplicate
        self._held -= 1
        size = len(payload)
        self._held_bytes -= size
        if size:
            self._expected_ts = (self._ts[slot] + size) & 0xFFFFFFFF
            if played:
                self._credit = 0
        return payload

    # -- playing -----------------------------------------------------------------------
    def pull(self) -> memoryview | None:
        """This tick's 20 ms frame, or None: conceal it (or, before ``started``, send nothing).

        The frame is valid until the next pull.
        """
        if self._ssrc is None:
            return None
        if self._adapted:
            self._adapted = False  # this period's adaptation ran at an arrival
        else:
            self._adapt()
        return self._play()

    def pull_on_arrival(self) -> memoryview | None:
        """Right after a push: the next frame now, if it is here in order with the target
        depth of audio behind it, and frames played so are less than ``MAX_LEAD_FRAMES``
        ahead of the ticks; else None (nothing to conceal: the tick, its deadline,
        decides). Valid until the next pull."""
        if self._lead >= MAX_LEAD_FRAMES or self._ssrc is None:
            return None
        if not self._adapted:
            self._adapt()  # once per period: the target this frame is judged by
            self._adapted = True
        if not self._ready():
            return None
        self._adapted = False
        starting = not self.started
        frame = self._play()
        if frame is not None:
            # The first frame starts a frame ahead: a packet is concealed only when it is
            # a whole frame later than its deadline.
            self._lead += 1 + (START_LEAD_FRAMES if starting else 0)
        return frame

    def due(self) -> bool:
        """At a period's tick: whether its frame is still to be pulled (False: it went on
        arrival, ahead of this tick)."""
        if self._lead:
            self._lead -= 1
            return False
        return True

    def _play(self) -> memoryview | None:
        size = self.frame_bytes
        if self._waiting:
            buffered = self._fill + self._held_bytes + (len(self._part) if self._part else 0)
            if buffered < (self.target_frames + 1) * size and (
                not self._held_bytes or self._waited < self.target_frames
            ):
                self._waited += 1 if self._held_bytes else 0
                self._miss()
                return None
            self._waiting = False
            self._waited = 0
            if (
                self._credit
                and not self.on_arrival
                and self._present(self._cursor & _MASK, self._cursor)
            ):
                self._grow()  # what we waited for came, late: a deeper buffer would have had it
        fill, out = self._fill, self._out
        while fill < size:
            part = self._part
            if part is not None:
                take = min(len(part), size - fill)
                out[fill : fill + take] = part[:take]
                fill += take
                self._part = part[take:] if take < len(part) else None
                continue
            slot = self._cursor & _MASK
            if self._state[slot] == _HELD and self._seq[slot] == self._cursor:  # ``_present``
                if (
                    self._ts[slot] != self._expected_ts
                    and self._payload[slot]
                    and self._gap_before(slot) * 2 >= size
                ):
                    self._fill = fill  # the sender paused (a digit, say): that time is heard
                    self._miss()
                    return None
                self._cursor += 1
                self._fresh = False
                payload = self._consume(slot, played=True)
                if not payload:
                    continue  # an event's sequence number
                if fill == 0 and len(payload) == size:
                    self._played()
                    return payload  # the common case: one 20 ms packet, not copied
                self._part = payload
                continue
            if not self._held:
                self._fill = fill
                self._waiting = True
                self.counters.underruns += 1
                self._miss()
                return None
            if self._uncovered() * 2 >= size:
                self._fill = fill  # audio is missing here: conceal, the packet may still come
                self._miss()
                return None
            while not self._present(self._cursor & _MASK, self._cursor):
                self._give_up(self._cursor & _MASK, self._cursor)
                self._cursor += 1
        self._fill = 0
        self._played()
        return self._out_view

    def _ready(self) -> bool:
        """Whether a pull would play a frame of held audio, leaving the target depth held."""
        if self._ssrc is None or self._fill:
            return False
        size = self.frame_bytes
        need = (self.target_frames + 1) * size
        have = len(self._part) if self._part is not None else 0
        expected = self._expected_ts
        extended = self._cursor
        state, seq, payloads = self._state, self._seq, self._payload  # ``_present``, inline
        slot = extended & _MASK
        if not have and not (state[slot] == _HELD and seq[slot] == extended):
            if not self._held or self._uncovered() * 2 >= size:
                return False  # audio missing and not concealed yet: its deadline decides
            # What is missing was concealed already: the pull gives it up and plays on.
            while not self._present(extended & _MASK, extended):
                extended += 1
            expected = None
        while have < need:
            slot = extended & _MASK
            if not (state[slot] == _HELD and seq[slot] == extended):
                return False
            payload = payloads[slot]
            if payload:
                timestamp = self._ts[slot]
                if expected is not None and timestamp != expected:
                    return False  # a gap: the tick conceals it if the audio has not come
                expected = (timestamp + len(payload)) & 0xFFFFFFFF
                have += len(payload)
            extended += 1
        return True

    def _present(self, slot: int, extended: int) -> bool:
        return self._state[slot] == _HELD and self._seq[slot] == extended

    def _miss(self) -> None:
        """No frame this tick: the caller conceals one (once started), covering that much time."""
        if self.started:
            self._credit += self.frame_bytes
            self._observe(0)

    def _uncovered(self) -> int:
        """Samples of audio missing before the next packet held, not yet concealed."""
        for ahead in range(self._highest - self._cursor + 1):
            extended = self._cursor + ahead
            slot = extended & _MASK
            if self._present(slot, extended) and self._payload[slot]:
                return self._gap_before(slot)
        return 0

    def _gap_before(self, slot: int) -> int:
        """Samples between the audio played last and the packet in ``slot``, not yet concealed.

        A gap with no sequence number missing is time the sender sent no audio in (an
        RFC 4733 digit, silence suppression): it is concealed too, so the agent hears it.
        """
        expected = self._expected_ts
        if expected is None:
            return 0
        gap = (self._ts[slot] - expected) & 0xFFFFFFFF
        if gap >= 0x80000000 or gap > MAX_GAP_SAMPLES:
            return 0  # the timestamps jumped: a discontinuity, nothing to fill
        return gap - self._credit

    def _played(self) -> None:
        self.started = True
        part = self._part
        remaining = self._held_bytes + (len(part) if part else 0)
        size = self.frame_bytes
        self._observe(remaining // size)
        self._min_remaining = min(self._min_remaining, remaining)
        bound = (self.max_frames + 1) * size
        if remaining <= bound:
            self._over_max = 0
        else:
            self._over_max += 1
            if self._over_max >= TRIM_PULLS:  # not a stall's catch-up: too much held
                while self._held and remaining > bound:
                    self._drop_oldest()
                    remaining = self._held_bytes + (len(self._part) if self._part else 0)
                self._over_max = 0
        # Played on the tick, one frame above the target is the phase of arrivals against
        # the tick, not excess: dropping it would run dry at the next late packet and
        # conceal. Played on arrival, there is no such phase: that frame is excess.
        excess = (self.target_frames + (1 if self.on_arrival else 2)) * size
        if self._shrink_waited >= 0:  # a shrink is due: drop at the first quiet frame
            if remaining < excess:
                self._shrink_waited = -1  # the excess went by itself
            elif self._shrink_quietly():
                self._shrink_waited = -1
        self._window += 1
        if self._window >= SHRINK_WINDOW_PULLS:
            if self._min_remaining >= excess and self._shrink_waited < 0:
                self._shrink_waited = 0
                if self._shrink_quietly():
                    self._shrink_waited = -1
            self._window = 0
            self._min_remaining = 1 << 30

    def _shrink_quietly(self) -> bool:
        """Shrink now if the next frame is a pause (or waiting for one has lasted too long)."""
        quiet = self._quiet
        if quiet is not None and self._shrink_waited < SHRINK_PATIENCE_PULLS:
            slot = self._cursor & _MASK
            payload = self._payload[slot] if self._present(slot, self._cursor) else None
            if self._part is not None or payload is None or not quiet(payload):
                self._shrink_waited += 1
                return False
        self._shrink()
        return True

    def _shrink(self) -> None:
        """Drop a frame's worth of the oldest buffered audio."""
        dropped, size = 0, self.frame_bytes
        while dropped < size and self._part is None:
            slot = self._cursor & _MASK
            if not self._present(slot, self._cursor):
                return
            self._cursor += 1
            dropped += len(self._consume(slot, played=False))
            self.counters.shrunk += 1

    # -- depth ---------------------------------------------------------------------------
    def _adapt(self) -> None:
        self._since_late += 1
        if self._late_floor and self._since_late >= LATE_DECAY_PULLS:
            self._late_floor -= 1
            self._since_late = 0
            self._retarget()
        elif not self._since_late % RETARGET_PULLS:
            self._retarget()

    def _grow(self) -> None:
        self._late_floor = min(self.max_frames, max(self._late_floor, self.target_frames) + 1)
        self._since_late = 0
        self._retarget()

    def _retarget(self) -> None:
        size = self.frame_bytes
        from_jitter = int((JITTER_MULTIPLE * self._jitter + size / 2) // size)
        wanted = max(from_jitter, self._late_floor)
        self.target_frames = min(self.max_frames, max(self.min_frames, wanted))

    def _observe(self, depth: int) -> None:
        """One tick's depth after playing, and the target, into their histograms."""
        target = self.target_frames
        self.depth_frames_sum += depth
        self.target_frames_sum += target
        self.depth_histogram[_BUCKET_OF[depth] if depth < _BUCKETS else _OVER] += 1
        self.target_histogram[_BUCKET_OF[target] if target < _BUCKETS else _OVER] += 1

    # -- reading -------------------------------------------------------------------------
    @property
    def depth_frames(self) -> float:
        """Audio buffered and not yet played, in 20 ms frames."""
        part = len(self._part) if self._part else 0
        return (self._held_bytes + part + self._fill) / self.frame_bytes

    @property
    def jitter(self) -> float:
        """The interarrival jitter estimate, in timestamp units."""
        return self._jitter


def accelerated_class(core: Any) -> type[PyJitterBuffer]:
    """The jitter buffer on the C core ``core`` (``trunkline._speedups.JitterCore``): its
    per-packet and per-tick work in C, its readings as the twin's."""

    class CJitterBuffer(core, JitterReadings):
        __slots__ = ()

        @property
        def counters(self) -> JitterCounters:  # type: ignore[override]  # read-only here
            """A snapshot of the counters (the C core keeps them, in JitterCounters' order)."""
            return JitterCounters(*self.counter_tuple())

    return CJitterBuffer


if TYPE_CHECKING:
    JitterBuffer = PyJitterBuffer
else:
    JitterBuffer = (
        PyJitterBuffer if speedups.JitterCore is None else accelerated_class(speedups.JitterCore)
    )
