"""The jitter buffer's C core and its pure-Python twin, driven with the same packet traces.

Both must give the same frames (byte for byte, or None), the same answers from
``due``, and the same counters, histograms, target, depth and jitter estimate after
every tick: the C core is the twin translated, not a second design. Traces mix
what networks do to RTP — loss, reordering, duplicates, bursts after a stall, 10, 20
and 30 ms packets, RFC 4733 events, timestamp gaps, sequence wraps and jumps, new
SSRCs — over enough ticks for the target to rise and decay and for excess to shrink.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import require
from tests.test_speedups import compiled
from trunkline import speedups
from trunkline.gateway.rtp.jitter import (
    SHRINK_WINDOW_PULLS,
    JitterBuffer,
    PyJitterBuffer,
    accelerated_class,
)

TICK = 0.020


def c_class() -> type[PyJitterBuffer]:
    module = compiled()
    require(module is not None, "the C extension trunkline._speedups is not built")
    assert module is not None
    return accelerated_class(module.JitterCore)


def quiet(payload: memoryview) -> bool:
    """A pause: an empty payload, or one whose marker byte is a multiple of three."""
    return not len(payload) or payload[0] % 3 == 0


@dataclass
class Packet:
    tick: int  # arrives during this tick
    offset: float  # seconds into the tick
    ssrc: int
    sequence: int
    timestamp: int
    payload: bytes  # empty: an RFC 4733 event


@dataclass
class Trace:
    settings: dict[str, Any]
    ticks: int
    packets: list[Packet] = field(default_factory=list)


def make_trace(rng: random.Random, ticks: int) -> Trace:
    """A stream with everything a network does to it, chosen by ``rng``."""
    min_frames = rng.choice((0, 0, 1, 2))
    config = {
        "min_frames": min_frames,
        "max_frames": rng.choice((max(1, min_frames), 3, 5)),
        "catch_up_frames": rng.choice((0, 2, 5)),
        "on_arrival": rng.random() < 0.5,
        "quiet": quiet if rng.random() < 0.6 else None,
    }
    trace = Trace(config, ticks)
    samples = rng.choice((160, 160, 80, 240))
    ssrc, sequence, timestamp = rng.getrandbits(32), rng.randrange(65536), rng.getrandbits(32)
    loss, late, duplicate = rng.choice((0, 0.02, 0.1)), rng.choice((0, 0.05, 0.2)), 0.03
    spread = rng.choice((0.002, 0.01, 0.03))
    number, stall_until = 0, -1
    for tick in range(ticks):
        # as many packets as the sender's clock made this tick (10 ms packets: two)
        per_tick = {80: 2, 160: 1, 240: 1 if tick % 3 else 0}[samples]
        for _ in range(per_tick):
            roll = rng.random()
            if roll < 0.005:
                ssrc = rng.getrandbits(32)  # a new stream
            elif roll < 0.01:
                sequence = (sequence + rng.choice((100, 4000, 65000))) & 0xFFFF  # a jump
            elif roll < 0.02:
                timestamp = (timestamp + rng.choice((160, 800, 9000))) & 0xFFFFFFFF  # a pause
            if rng.random() < 0.03:  # a digit's event packet takes a sequence number
                trace.packets.append(Packet(tick, rng.random() * TICK, ssrc, sequence, 0, b""))
                sequence = (sequence + 1) & 0xFFFF
            if rng.random() < 0.005:
                stall_until = tick + rng.randrange(2, 12)  # the network held packets back
            if rng.random() >= loss:
                delay = rng.randrange(1, 4) if rng.random() < late else 0
                arrive = max(tick + delay, stall_until)
                payload = bytes([number % 251]) * samples
                copies = 2 if rng.random() < duplicate else 1
                for _ in range(copies):
                    offset = min(TICK * 0.99, rng.random() * spread)
                    trace.packets.append(Packet(arrive, offset, ssrc, sequence, timestamp, payload))
            number += 1
            sequence = (sequence + 1) & 0xFFFF
            timestamp = (timestamp + samples) & 0xFFFFFFFF
    trace.packets.sort(key=lambda packet: (packet.tick, packet.offset))
    return trace


def state(buffer: PyJitterBuffer) -> tuple[Any, ...]:
    return (  # copies: the twin's counters and histograms are live objects
        asdict(buffer.counters),
        list(buffer.depth_histogram),
        list(buffer.target_histogram),
        buffer.depth_frames_sum,
        buffer.target_frames_sum,
        buffer.target_frames,
        buffer.started,
        buffer.depth_frames,
        buffer.jitter,
        buffer.counter_values(),
    )


def heard(frame: memoryview | None) -> bytes | None:
    return None if frame is None else bytes(frame)


def run(cls: type[PyJitterBuffer], trace: Trace) -> list[Any]:
    """Everything the buffer said, in order, as the call's media session drives it."""
    buffer = cls(**trace.settings)
    said: list[Any] = []
    packets = iter(trace.packets)
    pending = next(packets, None)
    for tick in range(trace.ticks):
        while pending is not None and pending.tick == tick:
            arrival = tick * TICK + pending.offset
            if pending.payload:
                buffer.push(
                    pending.ssrc,
                    pending.sequence,
                    pending.timestamp,
                    memoryview(pending.payload),
                    arrival,
                )
            else:
                buffer.push_event(pending.ssrc, pending.sequence)
            if buffer.on_arrival:
                said.append(("arrival", heard(buffer.pull_on_arrival())))
            pending = next(packets, None)
        due = buffer.due()
        said.append(("tick", due, heard(buffer.pull()) if due else "skipped"))
        said.append(state(buffer))
    return said


def assert_twins(trace: Trace) -> None:
    c_said, python_said = run(c_class(), trace), run(PyJitterBuffer, trace)
    for step, (c_step, python_step) in enumerate(zip(c_said, python_said, strict=True)):
        assert c_step == python_step, f"step {step}: C {c_step} != Python {python_step}"


@pytest.mark.parametrize("seed", range(120))
def test_the_c_core_plays_what_the_twin_plays(seed: int) -> None:
    assert_twins(make_trace(random.Random(seed), ticks=700))


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ticks=st.integers(1, 120))
def test_short_traces_agree_too(seed: int, ticks: int) -> None:
    assert_twins(make_trace(random.Random(seed), ticks))


def test_the_traces_reach_every_path() -> None:
    """The soak above is worth something only if its traces drop, shrink, reset and
    conceal: over the seeded traces every counter moves."""
    totals: dict[str, int] = {}
    for seed in range(120):
        trace = make_trace(random.Random(seed), ticks=700)
        for name, value in run(PyJitterBuffer, trace)[-1][-1].items():
            totals[name] = totals.get(name, 0) + value
    for name in ("late", "duplicate", "overflow", "shrunk", "lost", "underruns", "resets"):
        assert totals[f"jitter_{name}"] > 0, name
    assert totals["jitter_target_bucket_3"] > 0  # the target rose to three frames


def test_a_quiet_test_that_raises_reaches_the_caller_from_both() -> None:
    def broken(payload: memoryview) -> bool:
        raise RuntimeError("quiet test failed")

    for cls in (c_class(), PyJitterBuffer):
        buffer = cls(quiet=broken, min_frames=0, max_frames=5)
        for sequence in range(4):  # four frames ahead of the ticks: excess for the shrink
            buffer.push(7, sequence, sequence * 160, memoryview(b"\x01" * 160), 0.0)
        with pytest.raises(RuntimeError, match="quiet test failed"):
            for sequence in range(4, 4 + SHRINK_WINDOW_PULLS + 1):
                buffer.push(7, sequence, sequence * 160, memoryview(b"\x01" * 160), sequence * TICK)
                buffer.pull()


def test_the_configuration_is_checked_by_both() -> None:
    for cls in (c_class(), PyJitterBuffer):
        with pytest.raises(ValueError, match="min_frames <= max_frames"):
            cls(min_frames=4, max_frames=3)
        with pytest.raises(ValueError, match="max_frames >= 1"):
            cls(max_frames=0)


def test_the_chosen_buffer_follows_the_speedups_choice() -> None:
    if speedups.JitterCore is None:
        assert JitterBuffer is PyJitterBuffer
    else:
        assert issubclass(JitterBuffer, speedups.JitterCore)


def test_a_held_payload_is_the_object_pushed_not_a_copy() -> None:
    """20 ms packets come back as the very view pushed (nothing copied on the way)."""
    buffer = c_class()()
    payload = memoryview(b"\x05" * 160)
    buffer.push(1, 10, 1600, payload, 0.0)
    assert buffer.pull() is payload
