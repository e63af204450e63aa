"""An RTP session's inbound checks in C (``RtpReceiver``) and their pure-Python twin
(``PyRtpReceiver``), driven with the same datagrams.

Both must give the same outcome for every datagram, keep the same payload, event
fields and counters, report the same reception statistics, and leave their jitter
buffers (a C one and a pure-Python one, themselves twins) holding the same frames.
Traces mix what reaches a port: audio with loss, reordering, duplicates, sequence
wraps and jumps, new SSRCs and timestamp jumps; events; other payload types;
padding, CSRCs and header extensions; and datagrams that are not RTP at all.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import require
from tests.test_speedups import compiled
from trunkline.gateway.rtp.jitter import PyJitterBuffer, accelerated_class
from trunkline.gateway.rtp.reception import (
    AUDIO,
    BUFFERED,
    DROPPED,
    EVENT,
    LATE,
    PyRtpReceiver,
)

COUNTERS = (
    "packets_in",
    "bytes_in",
    "dropped_malformed",
    "dropped_payload_type",
    "dropped_late",
    "lost",
    "resyncs",
    "retimed",
)


def c_types() -> tuple[Any, Any]:
    module = compiled()
    require(module is not None, "the C extension trunkline._speedups is not built")
    assert module is not None
    return module.RtpReceiver, accelerated_class(module.JitterCore)


def packet(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    *,
    csrcs: int = 0,
    extension: bytes | None = None,
    padding: int = 0,
) -> bytes:
    first = 0x80 | csrcs | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    head = struct.pack("!BBHII", first, payload_type, sequence & 0xFFFF, timestamp, ssrc)
    head += bytes(4 * csrcs)
    if extension is not None:
        head += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    tail = bytes(padding - 1) + bytes([padding]) if padding else b""
    return head + payload + tail


def trace(seed: int, count: int) -> list[tuple[bytes, float]]:
    """``count`` datagrams with their arrival times, from ``seed``."""
    rng = random.Random(seed)
    ssrc, sequence, timestamp, now = rng.getrandbits(32), rng.getrandbits(16), 0, 100.0
    out: list[tuple[bytes, float]] = []
    for n in range(count):
        now += max(0.0, rng.gauss(0.020, 0.008))
        roll = rng.random()
        if roll < 0.03:
            out.append((rng.randbytes(rng.randrange(0, 40)), now))  # not RTP, mostly
            continue
        if roll < 0.05:
            out.append((packet(rng.choice((8, 9, 13)), sequence, timestamp, ssrc, b"x"), now))
            continue
        if roll < 0.08:  # an event: four bytes, or a broken one
            body = bytes([rng.randrange(16), rng.choice((0x00, 0x80)), 0, 160])
            out.append((packet(101, sequence, timestamp, ssrc, body[: rng.choice((4, 4, 2))]), now))
            sequence += 1
            continue
        if roll < 0.09:
            ssrc = rng.getrandbits(32)  # a new stream
        elif roll < 0.10:
            sequence += rng.choice((-5000, 4000, 30000))  # a jump
        elif roll < 0.12:
            timestamp += rng.choice((8000 * 120, -8000 * 90))  # a timestamp jump
        step = rng.choices((1, 0, -1, -3, 2, 4), weights=(80, 4, 4, 3, 5, 4))[0]
        sequence += step
        timestamp = (timestamp + 160 * step) & 0xFFFFFFFF
        frame = bytes([n & 0xFF]) * 160
        shape = rng.random()
        if shape < 0.03:
            datagram = packet(0, sequence, timestamp, ssrc, frame, csrcs=rng.randrange(1, 4))
        elif shape < 0.06:
            datagram = packet(0, sequence, timestamp, ssrc, frame, extension=bytes(8))
        elif shape < 0.09:
            datagram = packet(0, sequence, timestamp, ssrc, frame, padding=rng.randrange(1, 9))
        else:
            datagram = packet(0, sequence, timestamp, ssrc, frame)
        out.append((datagram, now))
    return out


def state(receiver: Any) -> dict[str, Any]:
    return {name: getattr(receiver, name) for name in COUNTERS} | {
        "reception": receiver.reception()
    }


def event_fields(receiver: Any) -> tuple[Any, ...]:
    return (bytes(receiver.payload), receiver.ssrc, receiver.sequence, receiver.timestamp)


class Stamps:
    """An ``arrival`` clock: when the datagram being handled came in (set per datagram)."""

    def __init__(self) -> None:
        self.arrived = 0.0
        self.asked = 0

    def __call__(self, now: float) -> float:
        self.asked += 1
        return self.arrived


def stalled(datagrams: list[tuple[bytes, float]], seed: int) -> list[tuple[bytes, float, float]]:
    """The trace with (arrival, handled) times: now and then the loop stalls 10-80 ms and
    what came meanwhile is handled when it wakes."""
    rng = random.Random(seed)
    out: list[tuple[bytes, float, float]] = []
    awake_at = 0.0
    for datagram, arrived in datagrams:
        if arrived > awake_at and rng.random() < 0.02:
            awake_at = arrived + rng.uniform(0.010, 0.080)
        out.append((datagram, arrived, max(arrived, awake_at)))
    return out


def run_both(
    datagrams: list[tuple[bytes, float]] | list[tuple[bytes, float, float]],
    buffered: bool,
    c_jitter: bool = True,
) -> None:
    """The C receiver (on the C jitter buffer, or on the twin's with ``c_jitter`` False,
    which it pushes through a Python call) against the twin on the twin's buffer. With
    (arrival, handled) times, both have an ``arrival`` clock and are given the handled."""
    c_receiver, c_jitter_class = c_types()
    ours_jitter = c_jitter_class() if c_jitter else PyJitterBuffer()
    jitters = (ours_jitter, PyJitterBuffer()) if buffered else (None, None)
    stamps = (Stamps(), Stamps()) if len(datagrams[0]) == 3 else (None, None)
    ours = c_receiver(0, 101, jitters[0], stamps[0])
    twin = PyRtpReceiver(0, 101, jitters[1], stamps[1])
    for index, (datagram, *times) in enumerate(datagrams):
        now = times[-1]
        for clock in stamps:
            if clock is not None:
                clock.arrived = times[0]
        outcome = ours.receive(datagram, now)
        assert outcome == twin.receive(datagram, now), f"datagram {index}"
        if outcome in (EVENT, AUDIO):
            assert event_fields(ours) == event_fields(twin), f"datagram {index}"
        assert state(ours) == state(twin), f"datagram {index}"
        if buffered and index % 3 == 2:  # the tick: both buffers play the same frame
            c_frame, py_frame = jitters[0].pull(), jitters[1].pull()
            assert (None if c_frame is None else bytes(c_frame)) == (
                None if py_frame is None else bytes(py_frame)
            ), f"datagram {index}"


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("seed", range(12))
def test_the_c_receiver_and_its_twin_agree_on_a_trace(seed: int, buffered: bool) -> None:
    run_both(trace(seed, 1500), buffered)


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_the_twins_agree_when_stalls_kept_packets_waiting(seed: int, buffered: bool) -> None:
    run_both(stalled(trace(200 + seed, 1500), seed), buffered)


@pytest.mark.parametrize("seed", range(3))
def test_the_c_receiver_pushes_into_a_python_jitter_buffer_too(seed: int) -> None:
    run_both(trace(100 + seed, 1500), buffered=True, c_jitter=False)


@settings(max_examples=300, deadline=None)
@given(datagram=st.binary(max_size=64), payload_type=st.integers(0, 127))
def test_any_datagram_gets_the_same_outcome(datagram: bytes, payload_type: int) -> None:
    c_receiver, _ = c_types()
    ours, twin = c_receiver(payload_type, 101, None), PyRtpReceiver(payload_type, 101, None)
    for now in (1.0, 1.02):  # twice: the second may be a duplicate
        assert ours.receive(datagram, now) == twin.receive(datagram, now)
        assert state(ours) == state(twin)


def test_outcomes_of_the_usual_datagrams() -> None:
    c_receiver, c_jitter_class = c_types()
    for receiver_class, jitter in (
        (c_receiver, c_jitter_class()),
        (PyRtpReceiver, PyJitterBuffer()),
    ):
        plain, buffered = receiver_class(0, 101, None), receiver_class(0, 101, jitter)
        audio = packet(0, 7, 1120, 5, b"\xff" * 160)
        assert plain.receive(audio, 1.0) == AUDIO
        assert bytes(plain.payload) == b"\xff" * 160
        assert plain.receive(audio, 1.02) == LATE  # the same packet again
        assert buffered.receive(audio, 1.0) == BUFFERED
        assert buffered.receive(audio, 1.02) == BUFFERED  # the buffer counts duplicates
        assert plain.receive(packet(8, 8, 1280, 5, b"x"), 1.04) == DROPPED
        assert plain.receive(b"\x00" * 20, 1.06) == DROPPED
        assert plain.receive(packet(101, 9, 1440, 5, b"\x01\x80\x00\xa0"), 1.08) == EVENT
        assert (plain.ssrc, plain.sequence, plain.timestamp) == (5, 9, 1440)
        assert (plain.dropped_payload_type, plain.dropped_malformed, plain.dropped_late) == (
            1,
            1,
            1,
        )
        assert plain.reception() == (5, 7, 1, 1, 0)


@pytest.mark.parametrize("arguments", [(128, None), (0, 128), (-1, None), (0, -1)])
def test_payload_types_out_of_range_are_refused(arguments: tuple[int, int | None]) -> None:
    c_receiver, _ = c_types()
    for receiver_class in (c_receiver, PyRtpReceiver):
        with pytest.raises(ValueError):
            receiver_class(*arguments, None)


@pytest.mark.parametrize(
    ("step", "jitter"), [(8000 * 60 - 1, (8000 * 60 - 1) >> 4), (8000 * 60, 0)]
)
def test_a_transit_change_of_a_minute_or_more_is_a_timestamp_jump(step: int, jitter: int) -> None:
    """Below 60 s of RTP time the change feeds the jitter estimate; from there it is a jump."""
    c_receiver, _ = c_types()
    for receiver_class in (c_receiver, PyRtpReceiver):
        receiver = receiver_class(0, None, None)
        assert receiver.receive(packet(0, 1, 0, 9, b"\xff" * 160), 5.0) == AUDIO
        assert receiver.receive(packet(0, 2, step, 9, b"\xff" * 160), 5.0) == AUDIO
        assert receiver.reception() == (9, 2, 2, 2, jitter)


def steady_with_a_stall(stall: float) -> list[tuple[bytes, float, float]]:
    """200 packets 20 ms apart, on time; the loop stalls ``stall`` s at the 100th: the
    packets that came meanwhile are handled when it wakes."""
    out = []
    stalls = 10.0 + 100 * 0.020
    wakes = stalls + stall
    for n in range(200):
        arrived = 10.0 + n * 0.020
        handled = wakes if stalls <= arrived < wakes else arrived
        out.append((packet(0, n, n * 160, 7, b"\xff" * 160), arrived, handled))
    return out


@pytest.mark.parametrize("which", ["C", "Python"])
def test_a_stall_of_the_loop_is_not_taken_for_network_jitter(which: str) -> None:
    """Handled 60 ms late, timed by their arrival: the jitter estimates stay where a
    smooth stream leaves them (zero) and the buffer's target stays at its minimum. Without
    an arrival clock the same stall shows as jitter and raises the target."""
    receiver_class, jitter_class = c_types() if which == "C" else (PyRtpReceiver, PyJitterBuffer)
    results = {}
    for with_clock in (True, False):
        stamps = Stamps()
        jitter = jitter_class()
        receiver = receiver_class(0, None, jitter, stamps if with_clock else None)
        for index, (datagram, arrived, handled) in enumerate(steady_with_a_stall(0.060)):
            stamps.arrived = arrived
            assert receiver.receive(datagram, handled) == BUFFERED
            jitter.pull()
            if index == 110:
                results[with_clock] = (receiver.reception()[4], jitter.target_frames)
        results[with_clock] += (receiver.retimed, stamps.asked)
    assert results[True] == (0, 0, 3, 3)  # the three packets that waited, asked and retimed
    jitter_units, target, retimed, asked = results[False]
    assert jitter_units > 24 and target >= 1 and retimed == asked == 0


@pytest.mark.parametrize("which", ["C", "Python"])
def test_the_arrival_clock_is_asked_only_about_packets_out_of_step(which: str) -> None:
    """Within 3 ms of the packet before, the handling time stands (no system call); a
    clock that cannot say (it answers ``now`` or later) changes nothing."""
    receiver_class = c_types()[0] if which == "C" else PyRtpReceiver
    stamps = Stamps()
    receiver = receiver_class(0, None, None, stamps)
    for n in range(50):
        now = 1.0 + n * 0.020 + (0.0029 if n % 2 else 0.0)
        stamps.arrived = now
        receiver.receive(packet(0, n, n * 160, 7, b"\xff" * 160), now)
    assert stamps.asked == 0
    stamps.arrived = 9.0  # later than now: not believed
    receiver.receive(packet(0, 50, 50 * 160, 7, b"\xff" * 160), 2.1)
    assert (stamps.asked, receiver.retimed) == (1, 0)
