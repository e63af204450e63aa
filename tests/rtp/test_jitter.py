"""The caller's jitter buffer, driven directly: packets pushed at chosen times, one pull per tick."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.clock import FakeClock
from trunkline.codecs.dtmf import TelephoneEvent, encode_event
from trunkline.gateway.rtp.jitter import (
    LATE_DECAY_PULLS,
    MAX_LEAD_FRAMES,
    MAX_SEQUENCE_JUMP,
    RETARGET_PULLS,
    SHRINK_PATIENCE_PULLS,
    SHRINK_WINDOW_PULLS,
    JitterBuffer,
)
from trunkline.gateway.rtp.packet import build_packet
from trunkline.gateway.rtp.session import RtpSession

TICK = 0.020
CARRIER = ("192.0.2.10", 40000)


def audio(number: int, size: int = 160) -> memoryview:
    """Packet ``number``'s payload: every byte says which packet it is."""
    return memoryview(bytes([number % 251]) * size)


class Sender:
    """A stream: packet n has sequence first_seq + n and timestamp first_ts + n × samples."""

    def __init__(
        self, first_seq: int = 1000, first_ts: int = 50_000, ssrc: int = 7, samples: int = 160
    ) -> None:
        self.first_seq, self.first_ts, self.ssrc, self.samples = first_seq, first_ts, ssrc, samples

    def push(self, buffer: JitterBuffer, number: int, at: float) -> None:
        buffer.push(
            self.ssrc,
            (self.first_seq + number) & 0xFFFF,
            (self.first_ts + number * self.samples) & 0xFFFFFFFF,
            audio(number, self.samples),
            at,
        )


def play(
    buffer: JitterBuffer, sender: Sender, arrivals: dict[int, Iterable[int]], ticks: int
) -> list[int | None]:
    """Tick by tick: push what arrives during the tick, then pull. Each output is the
    packet number a frame came from, or None (conceal; before the first frame: nothing)."""
    heard: list[int | None] = []
    for tick in range(ticks):
        for number in arrivals.get(tick, ()):
            sender.push(buffer, number, tick * TICK + 0.005)
        frame = buffer.pull()
        heard.append(None if frame is None else frame[0])
        if frame is not None:
            assert len(frame) == 160 and bytes(frame) == bytes([frame[0]]) * 160
    return heard


def steady(count: int, delay: int = 0) -> dict[int, list[int]]:
    return {n + delay: [n] for n in range(count)}


def test_nothing_is_played_before_the_first_packet() -> None:
    buffer = JitterBuffer()
    assert [buffer.pull() for _ in range(5)] == [None] * 5
    assert not buffer.started
    Sender().push(buffer, 0, 0.0)
    assert buffer.pull() is not None and buffer.started


def test_an_in_order_stream_plays_each_packet_at_the_next_tick() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3)
    heard = play(buffer, Sender(), steady(50), 50)
    assert heard == list(range(50))
    counters = buffer.counters
    assert (counters.late, counters.duplicate, counters.lost, counters.underruns) == (0, 0, 0, 0)
    assert buffer.target_frames == 0


def test_reordered_packets_within_the_depth_play_in_order() -> None:
    buffer = JitterBuffer(min_frames=2, max_frames=3)
    order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8, 10, 11, 13, 12, 14, 15, 16, 17, 18, 19]
    arrivals = {tick: [number] for tick, number in enumerate(order)}
    heard = play(buffer, Sender(), arrivals, 25)
    assert [n for n in heard if n is not None] == list(range(20))
    assert heard[:2] == [None, None]  # two frames of depth built first, nothing sent meanwhile
    counters = buffer.counters
    assert (counters.late, counters.lost, counters.duplicate) == (0, 0, 0)


def test_duplicates_are_dropped_and_counted_whether_held_or_played() -> None:
    buffer = JitterBuffer(min_frames=1, max_frames=3)
    arrivals = {0: [0, 0], 1: [1], 2: [2, 1], 3: [3], 4: [4, 0], 5: [5]}  # 0 again, long after
    heard = play(buffer, Sender(), arrivals, 8)
    assert [n for n in heard if n is not None] == [0, 1, 2, 3, 4, 5]
    assert buffer.counters.duplicate == 3 and buffer.counters.late == 0


def test_a_lost_packet_is_concealed_for_exactly_its_slot() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3)
    arrivals = steady(20)
    del arrivals[7]
    heard = play(buffer, Sender(), arrivals, 20)
    assert heard == [*range(7), None, *range(8, 20)]  # the cadence and the latency are kept
    assert buffer.counters.lost == 1 and buffer.counters.late == 0


def test_a_lost_packet_with_depth_is_concealed_once_then_skipped() -> None:
    buffer = JitterBuffer(min_frames=2, max_frames=3)
    arrivals = steady(20)
    del arrivals[7]
    heard = play(buffer, Sender(), arrivals, 22)
    assert heard == [None, None, *range(7), None, *range(8, 20)]
    assert buffer.counters.lost == 1


def test_a_packet_after_its_slot_was_played_is_late_and_the_target_grows() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3)
    arrivals = steady(30)
    arrivals[7] = []  # packet 7 comes two ticks late, after 8 was played
    arrivals[9] = [9, 7]
    heard = play(buffer, Sender(), arrivals, 30)
    assert 7 not in heard and heard[7] is None
    assert buffer.counters.late == 1 and buffer.counters.lost == 1
    assert buffer.target_frames == 1  # grown at once
    play(buffer, Sender(), {}, LATE_DECAY_PULLS + 1)
    assert buffer.target_frames == 0  # and decays


def test_a_delay_spike_is_absorbed_then_the_depth_shrinks_back() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3)
    arrivals = steady(200)
    for held_back in (10, 11, 12):
        arrivals[held_back] = []
    arrivals[13] = [10, 11, 12, 13]  # held back up to 60 ms, then a burst
    heard = play(buffer, Sender(), arrivals, 210)
    played = [n for n in heard if n is not None]
    assert played == sorted(played)  # in order
    assert heard[10:13] == [None, None, None]  # the spike is concealed ...
    assert heard[13:16] == [10, 11, 12]  # ... and nothing of the burst is lost
    assert buffer.counters.lost == 0 and buffer.counters.late == 0
    assert buffer.counters.shrunk >= 1  # the extra depth is dropped again, slowly
    assert buffer.depth_frames <= buffer.target_frames + 1


def spike_then_steady(count: int) -> dict[int, list[int]]:
    """Packets 10-12 held back up to 60 ms, then a burst: three frames of extra depth."""
    arrivals = steady(count)
    for held_back in (10, 11, 12):
        arrivals[held_back] = []
    arrivals[13] = [10, 11, 12, 13]
    return arrivals


def test_with_a_quiet_test_the_shrink_waits_for_a_pause() -> None:
    pauses = set(range(150, 160))  # the caller pauses for 200 ms, 3 s into the call
    buffer = JitterBuffer(min_frames=0, max_frames=3, quiet=lambda frame: frame[0] in pauses)
    heard = play(buffer, Sender(), spike_then_steady(240), 250)  # numbers < 251: one byte
    played = [n for n in heard if n is not None]
    skipped = sorted(set(range(played[0], played[-1] + 1)) - set(played))
    assert skipped and set(skipped) <= pauses  # the depth came down, in the pause only
    assert buffer.counters.shrunk == len(skipped)
    assert buffer.counters.lost == 0 and buffer.counters.overflow == 0


def test_with_no_pause_the_shrink_drops_a_frame_after_its_patience() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, quiet=lambda frame: False)
    ticks = SHRINK_WINDOW_PULLS + 60
    play(buffer, Sender(), spike_then_steady(ticks), ticks)
    assert buffer.counters.shrunk == 0  # due since the first window, but no pause came
    buffer = JitterBuffer(min_frames=0, max_frames=3, quiet=lambda frame: False)
    ticks = 2 * SHRINK_WINDOW_PULLS + SHRINK_PATIENCE_PULLS + 10
    play(buffer, Sender(), spike_then_steady(ticks), ticks)
    assert buffer.counters.shrunk >= 1


def test_a_burst_beyond_the_maximum_and_the_catch_up_drops_the_oldest_at_once() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, catch_up_frames=5)
    sender = Sender()
    sender.push(buffer, 0, 0.0)
    assert buffer.pull() is not None
    for number in range(1, 16):  # 300 ms of audio at once
        sender.push(buffer, number, 0.021)
    assert buffer.counters.overflow == 6  # held: 3 frames + the next + 5 to catch up
    heard = [bytes(frame)[0] for frame in iter(buffer.pull, None)]
    assert heard == list(range(7, 16))


def test_a_burst_read_after_a_stall_is_played_by_the_clock_catching_up() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, catch_up_frames=5)
    heard = play(buffer, Sender(), steady(5), 5)
    sender = Sender()
    for number in range(5, 13):  # the loop stalled 160 ms: 8 packets read at once ...
        sender.push(buffer, number, 0.26)
    for _ in range(8):  # ... and the clock runs the 8 slots it missed
        frame = buffer.pull()
        heard.append(None if frame is None else frame[0])
    assert heard == list(range(13))
    assert buffer.counters.overflow == 0


def test_more_than_the_maximum_held_for_200_ms_is_trimmed_back() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, catch_up_frames=5)
    arrivals = steady(10)
    arrivals[10] = list(range(10, 18))  # 7 packets early, and the sender stays that far ahead
    arrivals.update({number - 7: [number] for number in range(18, 100)})
    heard = play(buffer, Sender(), arrivals, 60)
    played = [n for n in heard if n is not None]
    assert played == sorted(played) and None not in heard[:60]
    assert buffer.counters.overflow == 3  # back to 3 frames + the next one
    assert buffer.depth_frames <= 4


def on_arrival(
    buffer: JitterBuffer, sender: Sender, arrivals: dict[int, Iterable[int]], ticks: int
) -> list[tuple[str, int | None]]:
    """Played on arrival: each packet is pushed 8 ms into its period and what can go goes;
    the period's deadline, 12 ms later, pulls only if nothing went on arrival. Each output
    is when a frame went ("arrival" or "deadline") and the packet number it came from
    (None: conceal)."""
    heard: list[tuple[str, int | None]] = []
    for tick in range(ticks):
        for number in arrivals.get(tick, ()):
            sender.push(buffer, number, tick * TICK + 0.008)
            while (frame := buffer.pull_on_arrival()) is not None:
                heard.append(("arrival", frame[0]))
        if buffer.due():
            frame = buffer.pull()
            if frame is not None or buffer.started:
                heard.append(("deadline", None if frame is None else frame[0]))
    return heard


def test_on_arrival_an_in_order_stream_plays_each_packet_as_it_comes() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, on_arrival=True)
    heard = on_arrival(buffer, Sender(), steady(100), 100)
    assert heard == [("arrival", n) for n in range(100)]  # none waits for its deadline
    counters = buffer.counters
    assert (counters.late, counters.lost, counters.underruns, counters.shrunk) == (0, 0, 0, 0)
    assert buffer.depth_histogram[0] == 100  # nothing held behind


def test_on_arrival_a_packet_a_frame_late_is_not_concealed() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, on_arrival=True)
    arrivals = steady(30)
    arrivals[10], arrivals[11] = [], [10, 11]  # 10 is a whole frame late
    heard = on_arrival(buffer, Sender(), arrivals, 30)
    assert heard == [("arrival", n) for n in range(30)]  # the stream began a frame ahead


def test_on_arrival_a_packet_after_its_deadline_is_concealed_and_no_delay_stays() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, on_arrival=True)
    arrivals = steady(60)
    arrivals[10], arrivals[11], arrivals[12] = [], [], [10, 11, 12]  # 10 is two frames late
    heard = on_arrival(buffer, Sender(), arrivals, 60)
    assert heard[:10] == [("arrival", n) for n in range(10)]
    assert heard[10] == ("deadline", None)  # concealed at its deadline
    # Then 10, 11 and 12 go as they come, ahead of the ticks rather than a frame behind
    # the packets, and so does every packet after them.
    assert heard[11:] == [("arrival", n) for n in range(10, 60)]
    counters = buffer.counters
    assert (counters.lost, counters.late, counters.shrunk, buffer.target_frames) == (0, 0, 0, 0)


def test_on_arrival_the_frame_gained_covers_the_next_late_packet() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, on_arrival=True)
    arrivals = steady(60)
    arrivals[10], arrivals[11], arrivals[12] = [], [], [10, 11, 12]  # concealed once
    arrivals[30], arrivals[31], arrivals[32] = [], [], [30, 31, 32]  # covered by the gain
    heard = on_arrival(buffer, Sender(), arrivals, 60)
    assert heard.count(("deadline", None)) == 1
    assert [n for _, n in heard if n is not None] == list(range(60))


def test_on_arrival_a_lost_packet_is_concealed_and_holds_nothing_back() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, on_arrival=True)
    arrivals = steady(30)
    del arrivals[10]
    heard = on_arrival(buffer, Sender(), arrivals, 30)
    assert heard[:10] == [("arrival", n) for n in range(10)]
    assert heard[10] == ("deadline", None)  # 10's time, concealed once 11 was here
    assert heard[11:] == [("arrival", n) for n in range(11, 30)]  # none waits for a tick
    assert buffer.counters.lost == 1


def test_on_arrival_a_target_depth_is_kept_behind_the_frame_played() -> None:
    buffer = JitterBuffer(min_frames=1, max_frames=3, on_arrival=True)
    heard = on_arrival(buffer, Sender(), steady(50), 50)
    assert heard == [("arrival", n) for n in range(49)]  # each as the one after it comes
    assert buffer.depth_histogram[0] == 0


def test_on_arrival_packets_swapped_in_a_period_play_in_order() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3, on_arrival=True)
    arrivals = steady(30)
    arrivals[5], arrivals[6] = [], [6, 5]  # 5 misses its deadline and comes after 6
    heard = on_arrival(buffer, Sender(), arrivals, 30)
    assert heard == [("arrival", n) for n in range(30)]  # 5 and 6 both as 5 comes
    assert buffer.counters.lost == 0 and buffer.counters.late == 0


def test_sequence_numbers_wrap_through_reordering() -> None:
    buffer = JitterBuffer(min_frames=1, max_frames=3)
    sender = Sender(first_seq=65530)
    order = [0, 1, 2, 3, 4, 6, 5, 7, 8, 9, 10, 11]  # 65534, 65536 → 0 swapped with 65535
    heard = play(buffer, sender, {tick: [n] for tick, n in enumerate(order)}, 14)
    assert [n for n in heard if n is not None] == list(range(12))
    assert buffer.counters.late == buffer.counters.lost == 0


def test_timestamps_wrap_and_a_loss_across_the_wrap_is_concealed_once() -> None:
    buffer = JitterBuffer(min_frames=1, max_frames=3)
    sender = Sender(first_ts=0xFFFFFFFF - 3 * 160)
    arrivals = steady(12)
    del arrivals[4]  # the packet whose timestamp wraps to 0
    heard = play(buffer, sender, arrivals, 14)
    assert heard == [None, *range(4), None, *range(5, 12), None][: len(heard)]
    assert buffer.counters.lost == 1


def test_a_new_ssrc_starts_a_new_stream() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3)
    first, second = Sender(ssrc=1), Sender(ssrc=2, first_seq=40_000, first_ts=9)
    heard = play(buffer, first, steady(5), 5)
    for number in range(100, 105):
        second.push(buffer, number, 1.0)
        frame = buffer.pull()
        assert frame is not None
        heard.append(frame[0])
    assert heard == [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]
    assert buffer.counters.resets == 1 and buffer.counters.late == 0


def test_a_sequence_restart_on_the_same_ssrc_starts_again() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3)
    sender = Sender(first_seq=20_000)
    play(buffer, sender, steady(5), 5)
    sender.first_seq -= MAX_SEQUENCE_JUMP + 100  # far behind: not late, a restart
    sender.push(buffer, 5, 0.2)
    frame = buffer.pull()
    assert frame is not None and frame[0] == 5
    assert buffer.counters.resets == 1 and buffer.counters.late == 0


@pytest.mark.parametrize("samples", [80, 240, 160 * 3])
def test_packets_of_other_lengths_are_reframed_into_20_ms_frames(samples: int) -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=6)
    sender = Sender(samples=samples)
    out = bytearray()
    sent = bytearray()
    seconds = 0.0
    number = 0
    for _tick in range(30 * samples // 160 + 10):  # packets arrive when due; a pull per 20 ms
        while number * samples < (seconds + TICK) * 8000 and number < 30:
            sender.push(buffer, number, seconds)
            sent += audio(number, samples)
            number += 1
        frame = buffer.pull()
        if frame is not None:
            assert len(frame) == 160
            out += frame
        seconds += TICK
    assert bytes(out) == bytes(sent)  # every byte, in order
    assert buffer.counters.lost == buffer.counters.late == buffer.counters.overflow == 0


def test_rtp_events_interleaved_with_audio_are_not_lost_audio_and_not_delayed() -> None:
    clock = FakeClock()
    buffer = JitterBuffer(min_frames=2, max_frames=3)
    digits: list[str] = []
    session = RtpSession(0, 101, lambda p: None, digits.append, clock=clock, jitter=buffer)
    heard: list[int | None] = []
    seq, ts = 100, 8000
    for index in range(12):
        if index in (4, 5, 6):  # the digit's packets take these sequence numbers
            event = TelephoneEvent("7", end=index == 6, volume=10, duration=160 * (index - 3))
            session.receive(
                build_packet(
                    encode_event(event), payload_type=101, sequence=seq, timestamp=ts, ssrc=9
                ),
                CARRIER,
            )
            if index == 6:
                assert digits == ["7"]  # reported on arrival, while audio still waits
        else:
            session.receive(
                build_packet(
                    bytes([index]) * 160, payload_type=0, sequence=seq, timestamp=ts, ssrc=9
                ),
                CARRIER,
            )
        seq, ts = seq + 1, ts + 160
        clock.advance(TICK)
        frame = buffer.pull()
        if frame is not None or buffer.started:
            heard.append(None if frame is None else frame[0])
    heard += [frame[0] for frame in iter(buffer.pull, None)]
    # The digit's 60 ms had no audio: three concealed slots, the rest in order, nothing lost.
    assert heard == [0, 1, 2, 3, None, None, None, 7, 8, 9, 10, 11]
    assert buffer.counters.lost == 0 and buffer.counters.late == 0


def test_a_jittery_stream_raises_the_target_within_the_bounds() -> None:
    buffer = JitterBuffer(min_frames=0, max_frames=3)
    sender = Sender()
    for number in range(200):  # every other packet 25 ms late
        sender.push(buffer, number, number * TICK + (0.025 if number % 2 else 0.0))
    assert buffer.jitter > 100  # timestamp units: 12.5 ms and more
    for _ in range(RETARGET_PULLS):  # the target follows the estimate at this interval
        buffer.pull()
    assert buffer.target_frames == 3  # capped at the maximum
    calm = JitterBuffer(min_frames=1, max_frames=3)
    for number in range(200):
        sender.push(calm, number, number * TICK)
    for _ in range(RETARGET_PULLS):
        calm.pull()
    assert calm.target_frames == 1  # never below the minimum


def test_depth_and_target_are_sampled_every_tick() -> None:
    buffer = JitterBuffer(min_frames=1, max_frames=3)
    play(buffer, Sender(), steady(40), SHRINK_WINDOW_PULLS)
    values = buffer.counter_values()
    depth = [values[f"jitter_depth_bucket_{i}"] for i in range(7)]
    target = [values[f"jitter_target_bucket_{i}"] for i in range(7)]
    played = 40 - 1 + 1  # frames played once started, then concealed ticks after the end
    assert sum(depth) == sum(target) >= played
    assert target[1] == sum(target)  # the target stayed one frame


def test_bad_depths_are_refused() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(min_frames=0, max_frames=0)
    with pytest.raises(ValueError):
        JitterBuffer(min_frames=4, max_frames=3)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 3)),
        max_size=200,
    ),
    st.integers(0, 3),
)
def test_any_arrival_order_keeps_the_buffer_bounded(
    packets: list[tuple[int, int, int]], least: int
) -> None:
    buffer = JitterBuffer(min_frames=least, max_frames=3)
    for index, (seq, ts, ssrc) in enumerate(packets):
        buffer.push(ssrc, seq, ts, audio(index, 80 + (seq % 3) * 80), index * 0.01)
        assert buffer.depth_frames <= 3 + 1 + 5 + 1.5  # bounded, whatever arrives
        if index % 2:
            frame = buffer.pull()
            assert frame is None or len(frame) == 160


@pytest.mark.parametrize("arrival_mode", [False, True], ids=["on_the_tick", "on_arrival"])
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 120), st.booleans(), st.booleans()), min_size=1, max_size=120
    ),
    st.integers(0, 3),
    st.integers(0, 0xFFFF),
)
def test_whatever_the_network_does_packets_come_out_in_order_and_once(
    arrival_mode: bool, fates: list[tuple[int, bool, bool]], least: int, first_seq: int
) -> None:
    """Each packet is delayed 0-120 ms, maybe lost, maybe duplicated; frames come out in
    order, and (played on arrival or not) never more than two ahead of the 20 ms ticks."""
    buffer = JitterBuffer(min_frames=least, max_frames=3, on_arrival=arrival_mode)
    sender = Sender(first_seq=first_seq)
    arrivals: list[tuple[float, int]] = []
    for number, (delay_ms, lost, doubled) in enumerate(fates):
        if lost:
            continue
        sent_at = number * TICK + delay_ms / 1000
        arrivals += [(sent_at, number)] * (2 if doubled else 1)
    arrivals.sort()
    heard: list[int] = []
    tick, index, sent, ticks = 0, 0, 0, 0
    while index < len(arrivals) or tick < len(fates) + 20:
        while index < len(arrivals) and arrivals[index][0] < tick * TICK:
            sender.push(buffer, arrivals[index][1], arrivals[index][0])
            index += 1
            while arrival_mode and (frame := buffer.pull_on_arrival()) is not None:
                heard.append(frame[0])
                sent += 1
        if buffer.due():
            frame = buffer.pull()
            if frame is not None:
                heard.append(frame[0])
            sent += frame is not None or buffer.started  # a frame, or a concealment
            ticks += 1
        else:
            ticks += 1
        assert sent <= ticks + MAX_LEAD_FRAMES  # never more than two frames ahead
        tick += 1
    assert heard == sorted(set(heard))  # in order, none twice
    counters = buffer.counters
    pushed = len(arrivals)
    dropped = counters.late + counters.duplicate + counters.overflow + counters.shrunk
    assert len(heard) + dropped == pushed  # every packet played or counted


def test_a_deep_buffer_counts_its_depth_in_the_last_histogram_bucket() -> None:
    # A jitter maximum past the histogram's last bound (10 frames): a depth of 14 frames
    # goes in the +Inf bucket instead of failing the call's tick.
    buffer = JitterBuffer(max_frames=20)
    sender = Sender()
    for number in range(15):
        sender.push(buffer, number, number * 0.001)  # a burst: 15 frames held at once
    frame = buffer.pull()
    assert frame is not None and frame[0] == 0
    assert buffer.depth_histogram[-1] == 1 and sum(buffer.depth_histogram) == 1
