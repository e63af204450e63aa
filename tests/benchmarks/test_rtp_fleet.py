"""The benchmark carrier's RTP: packets built a tick at a time, batches of returns read at once."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks._frames import TAG, read_tag, tag_frame
from benchmarks._mmsg import BatchReceiver, BatchSender, sockaddr_in
from benchmarks._rtp_fleet import HEADER, PACKET, FrameMatrix, ReturnLedger, RtpFleet

RTP = struct.Struct("!BBHII")
AUDIO = bytes(range(256)) * 5  # 1,280 bytes: 8 frames of 160


def test_each_tick_writes_the_next_rtp_packet_of_every_leg() -> None:
    frames = FrameMatrix(3, AUDIO, numbered=True, seed=1)
    frames.advance(np.arange(3))
    frames.stamp(np.arange(3), 123_456_789)
    first = [bytes(frames.packets[leg]) for leg in range(3)]
    frames.advance(np.arange(3))
    frames.stamp(np.arange(3), 999)
    for leg in range(3):
        packet = bytes(frames.packets[leg])
        assert len(packet) == PACKET
        v, pt, seq, ts, ssrc = RTP.unpack_from(packet)
        v0, pt0, seq0, ts0, ssrc0 = RTP.unpack_from(first[leg])
        assert (v, pt) == (v0, pt0) == (0x80, 0)
        assert seq == (seq0 + 1) & 0xFFFF and ts == (ts0 + 160) & 0xFFFFFFFF and ssrc == ssrc0
        # the same payload the per-leg carrier built: tag (stamp, no agent stamp, leg, number),
        # then the leg's next frame of audio from byte 24 on
        position = (leg * 7919) % 7 + 1
        audio = AUDIO[position * 160 : position * 160 + 160]
        assert packet[HEADER:] == tag_frame(leg, 1, 999, audio)
        assert read_tag(packet, HEADER) == (leg, 1)


def test_sequence_and_timestamp_wrap_around() -> None:
    frames = FrameMatrix(1, AUDIO, numbered=False, seed=1)
    frames.sequence[0], frames.timestamp[0] = 0xFFFF, 0xFFFFFFFF - 100
    frames.advance(np.arange(1))
    _, _, seq, ts, _ = RTP.unpack_from(bytes(frames.packets[0]))
    assert (seq, ts) == (0, 59)


def test_unnumbered_frames_carry_plain_audio_and_only_live_legs_advance() -> None:
    frames = FrameMatrix(2, AUDIO, numbered=False, seed=1)
    frames.advance(np.array([1]))
    assert frames.number.tolist() == [0, 1]
    position = (1 * 7919) % 7
    assert bytes(frames.packets[1, HEADER:]) == AUDIO[position * 160 : position * 160 + 160]
    assert not frames.packets[0, 2:8].any()  # leg 0 never sent: no sequence or timestamp yet


def returned(leg: int, number: int, agent_stamp: int, *, silence: bool = False) -> bytes:
    payload = b"\xff" * 160 if silence else tag_frame(leg, number, 5, b"\x55" * 160)
    if not silence:
        payload = payload[:8] + struct.pack("!q", agent_stamp) + payload[16:]
    return RTP.pack(0x80, 0, number & 0xFFFF, 0, 1) + payload


def batch(packets: list[bytes]) -> np.ndarray:
    rows = np.zeros((len(packets), 512), dtype=np.uint8)
    for row, packet in enumerate(packets):
        rows[row, : len(packet)] = np.frombuffer(packet, dtype=np.uint8)
    return rows


def test_returns_are_numbered_timed_and_told_apart_by_source_port() -> None:
    ledger = ReturnLedger(2, numbered=True)
    ledger.expect(0, 40000)
    ledger.expect(1, 40002)
    packets = [
        returned(0, 7, 1_000_000),
        returned(1, 3, 2_000_000),
        returned(0, 8, 1_000_000, silence=True),  # trunkline's silence: paced, not counted
        returned(1, 9, 3_000_000),  # tagged for leg 1 but from leg 0's port: not ours
        returned(0, 9, 4_000_000),  # from a port no leg expects
    ]
    ports = np.array([40000, 40002, 40000, 40000, 41000])
    lengths = np.array([len(p) for p in packets])
    arrivals = np.array([11_000_000, 11_000_000, 31_000_000, 51_000_000, 11_000_000])
    ledger.take(batch(packets), lengths, ports, arrivals)
    assert ledger.received == 2
    assert sorted(ledger.latency_samples().tolist()) == [9.0, 10.0]
    assert ledger.ledger(0).count(0, 100) == 1 and ledger.ledger(0).count(7, 8) == 1
    assert ledger.ledger(1).count(0, 100) == 1 and ledger.ledger(1).count(3, 4) == 1
    # pacing: every packet from a leg's port, 20 ms apart; leg 1's first has none before it
    assert ledger.jitter_samples().tolist() == [0.0, 0.0]
    ledger.take(
        batch([returned(0, 10, 1)]), np.array([PACKET]), np.array([40000]), np.array([71_500_000])
    )
    assert ledger.jitter_samples().tolist() == [0.0, 0.0, 0.5]  # 20.5 ms after the one before


def test_each_return_is_timed_by_its_own_arrival_even_within_a_batch() -> None:
    ledger = ReturnLedger(2, numbered=True)
    ledger.expect(0, 40000)
    ledger.expect(1, 40002)
    packets = [returned(0, 1, 1_000_000), returned(1, 1, 1_000_000), returned(0, 2, 1_000_000)]
    arrivals = np.array([43_000_000, 4_000_000, 23_500_000])  # leg 0's two out of order
    ledger.take(batch(packets), np.array([PACKET] * 3), np.array([40000, 40002, 40000]), arrivals)
    assert sorted(ledger.latency_samples().tolist()) == [3.0, 22.5, 42.0]
    assert ledger.jitter_samples().tolist() == [0.5]  # leg 0: 19.5 ms apart; leg 1: first
    ledger.take(batch([returned(1, 2, 1)]), np.array([PACKET]), np.array([40002]), [24_000_000])
    assert ledger.jitter_samples().tolist() == [0.5, 0.0]  # leg 1: 20 ms after its first


def test_returns_from_a_shared_port_belong_to_the_leg_their_tag_names() -> None:
    ledger = ReturnLedger(3, numbered=True)
    ledger.share(40000)  # trunkline's shared RTP port: every leg's frames come from it
    ledger.expect(0, 40000)  # answered on the shared port: it stays shared
    ledger.expect(2, 40000)
    packets = [returned(0, 1, 1), returned(2, 1, 1), returned(0, 2, 1), returned(9, 3, 1)]
    arrivals = np.array([10_000_000, 11_000_000, 30_000_000, 31_000_000])
    ledger.take(batch(packets), np.array([PACKET] * 4), np.array([40000] * 4), arrivals)
    assert ledger.received == 3  # leg 9 is no leg of this ledger
    assert ledger.ledger(0).count(0, 10) == 2 and ledger.ledger(2).count(0, 10) == 1
    assert ledger.ledger(1).count(0, 10) == 0
    assert ledger.jitter_samples().tolist() == [0.0]  # leg 0's two, 20 ms apart
    with pytest.raises(ValueError):
        ReturnLedger(1, numbered=False).share(40000)


def test_a_ledger_grows_for_high_frame_numbers() -> None:
    ledger = ReturnLedger(1, numbered=True)
    ledger.expect(0, 5000)
    ledger.take(batch([returned(0, 100_000, 1)]), np.array([PACKET]), np.array([5000]), [10])
    assert ledger.ledger(0).count(100_000, 100_001) == 1


def test_unnumbered_returns_are_counted() -> None:
    ledger = ReturnLedger(1, numbered=False)
    ledger.expect(0, 6000)
    packets = [RTP.pack(0x80, 0, 1, 0, 1) + b"\x12" * 160, returned(0, 0, 0, silence=True)]
    ledger.take(batch(packets), np.array([PACKET, PACKET]), np.array([6000, 6000]), [10, 10])
    assert ledger.received == 1


def test_batches_go_out_and_come_back_through_sendmmsg_and_recvmmsg() -> None:
    receiver_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver_socket.bind(("127.0.0.1", 0))
        sender_socket.bind(("127.0.0.1", 0))
        port = receiver_socket.getsockname()[1]
        packets = np.arange(5 * 20, dtype=np.uint8).reshape(5, 20)
        addresses = np.stack([np.frombuffer(sockaddr_in("127.0.0.1", port), np.uint8)] * 5)
        sender = BatchSender(sender_socket, packets, addresses)
        sender.select(np.array([4, 0, 2]), 20)
        assert sender.send() == 3
        receiver = BatchReceiver(receiver_socket, slots=8, size=64)
        deadline = time.monotonic() + 5
        count = 0
        while count < 3 and time.monotonic() < deadline:
            count = receiver.receive()
        assert count == 3
        assert [bytes(receiver.buffer[i, :20]) for i in range(3)] == [
            bytes(packets[4]), bytes(packets[0]), bytes(packets[2])
        ]  # fmt: skip
        assert receiver.lengths[:3].tolist() == [20, 20, 20]
        assert set(receiver.ports[:3].tolist()) == {sender_socket.getsockname()[1]}
        assert receiver.arrivals_ns(3).tolist() == [0, 0, 0]  # no timestamps asked for
        assert receiver.receive() == 0  # nothing waiting: no block
    finally:
        receiver_socket.close()
        sender_socket.close()


def test_the_kernel_times_each_datagram_a_receiver_reads() -> None:
    receiver_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver_socket.bind(("127.0.0.1", 0))
        receiver = BatchReceiver(receiver_socket, slots=8, size=64, timestamps=True)
        address = receiver_socket.getsockname()
        # The kernel turns timestamping on for the whole host lazily: a datagram that came
        # before that took effect is stamped when read. One is sent and read first.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sender_socket.sendto(b"warm-up", address)
            time.sleep(0.01)
            sent_at = time.time_ns()
            time.sleep(0.01)
            if receiver.receive() == 1 and receiver.arrivals_ns(1)[0] < sent_at:
                break  # stamped on arrival, not when read
        before = time.time_ns()
        sender_socket.sendto(b"first", address)
        time.sleep(0.05)
        sender_socket.sendto(b"second", address)
        time.sleep(0.05)  # read 50 ms after the second came: its time is still its own
        after = time.time_ns()
        count = receiver.receive()
        assert count == 2
        first, second = receiver.arrivals_ns(count).tolist()
        assert before <= first < second <= after
        assert second - first >= 45_000_000
    finally:
        receiver_socket.close()
        sender_socket.close()


@pytest.fixture
def far_end() -> Iterator[socket.socket]:
    """A loopback UDP socket the fleet's legs send to."""
    far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    far.bind(("127.0.0.1", 0))
    far.settimeout(5)
    yield far
    far.close()


def test_a_fleet_sends_each_live_leg_one_tagged_frame_per_tick(far_end: socket.socket) -> None:
    fleet = RtpFleet(3, AUDIO, numbered=True, phases=1)
    try:
        fleet.connect(2, "127.0.0.1", far_end.getsockname()[1])
        fleet.tick()
        fleet.tick()
        got = [far_end.recvfrom(2048) for _ in range(2)]
        assert [read_tag(data, HEADER) for data, _ in got] == [(2, 0), (2, 1)]
        assert {addr[1] for _, addr in got} == {fleet.port}
        assert fleet.sent == 2 and fleet.unsent == 0
        assert len(got[0][0]) == HEADER + 160 and TAG.size == 24
    finally:
        fleet.sock.close()


def test_legs_send_in_their_own_phase_slot_once_per_period(far_end: socket.socket) -> None:
    fleet = RtpFleet(7, AUDIO, numbered=True, phases=4)
    try:
        assert fleet.slot_seconds == pytest.approx(0.005)
        for leg in (6, 0, 5, 1):  # connected out of order; slots 2, 0, 1, 1
            fleet.connect(leg, "127.0.0.1", far_end.getsockname()[1])
        sent_per_slot = []
        for _ in range(8):  # two periods
            before = fleet.sent
            fleet.tick()
            sent_per_slot.append(fleet.sent - before)
        assert sent_per_slot == [1, 2, 1, 0] * 2
        got = [read_tag(far_end.recvfrom(2048)[0], HEADER) for _ in range(8)]
        assert got == [(0, 0), (1, 0), (5, 0), (6, 0), (0, 1), (1, 1), (5, 1), (6, 1)]
        fleet.tick(send=False)  # slot 0 passes in silence: leg 0 waits a period
        fleet.tick()
        assert [read_tag(far_end.recvfrom(2048)[0], HEADER) for _ in range(2)] == [(1, 2), (5, 2)]
        with pytest.raises(ValueError):
            RtpFleet(1, AUDIO, numbered=True, phases=21)
    finally:
        fleet.sock.close()
