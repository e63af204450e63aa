"""Every call's RTP of a benchmark carrier on one UDP socket, built and read a tick at a time.

A carrier leg per call with its own socket and a Python call per packet each
way made the load generator, not the system measured, the limit from a few
hundred calls. Here all legs share one socket (each call's SDP offers the
same port; what comes back is told apart by its source port, the port the
call's far end answered with):

- :class:`FrameMatrix` holds one RTP packet per leg in a numpy matrix.
  Each tick advances every live leg's sequence number, timestamp, frame
  number and audio in a few array operations; only the stamp and numbers
  change between ticks, the rest is precomputed.
- :class:`ReturnLedger` reads a batch of received packets at once: which
  leg (by source port), whether it is trunkline's silence, the tag of
  ``benchmarks._frames`` (the leg and frame number, the agent's send stamp)
  and the inter-arrival time per leg.
- :class:`RtpFleet` ties them to a socket with ``sendmmsg``/``recvmmsg``
  (``benchmarks._mmsg``): a tick's packets go out in chunks of
  :data:`CHUNK` per system call, each chunk stamped just before it is sent,
  so a stamp is never more than one chunk's sending time early. What comes
  back is read every millisecond, each datagram with the time the kernel
  received it (``SO_TIMESTAMPNS``): a reader woken per datagram cost the
  carrier a Python call and a batch of array work for each one once the
  calls' clocks were spread over the period, and made the generator, not
  the system measured, the limit.

Each leg's 20 ms clock has its own phase, as independent calls' clocks do (a
call's packets go out every 20 ms from when it was answered): the period is
cut into ``phases`` slots (:data:`PHASES`, 1 ms apart), leg ``n`` sends in
slot ``n % phases``, and :meth:`RtpFleet.tick` sends one slot. ``phases=1``
sends every leg's packet in one burst per period, a worst case no trunk of
independent calls produces: the last packet of a burst of ``N`` waits for
the ``N - 1`` before it at whatever is measured.

The packets are those of the per-leg carriers they replace: 12-byte RTP
header (version 2, payload type 0, random initial sequence, timestamp and
SSRC), then 160 bytes of μ-law whose first 24 bytes are the tag when the
frames are numbered.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks._frames import MAX_LEGS, MAX_NUMBER, TAG, FrameLedger
from benchmarks._mmsg import BatchReceiver, BatchSender, sockaddr_in

HEADER = 12
PAYLOAD = 160
PACKET = HEADER + PAYLOAD
FRAME_NS = 20_000_000
CHUNK = 64  # packets per sendmmsg: one stamp per chunk
DRAIN_SECONDS = 0.001  # how often what came back is read
PHASES = 20  # slots of the 20 ms period the legs' clocks are spread over (1 ms apart)
SILENCE_BYTE = 0xFF  # trunkline's μ-law silence frame: 160 × 0xff
RECEIVE_BUFFER = 4 * 1024 * 1024  # a tick's burst of hundreds of packets must fit
_LEDGER_GROWTH = 4096
SHARED = -2  # a source port carrying several legs (``ReturnLedger.share``)


class FrameMatrix:
    """One RTP packet per leg, rewritten in place each tick (sans I/O)."""

    def __init__(self, legs: int, audio: bytes, numbered: bool, seed: int | None = None) -> None:
        frames = len(audio) // PAYLOAD
        if frames < 1:
            raise ValueError("audio must hold at least one 160-byte frame")
        self.legs = legs
        self.numbered = numbered
        self.audio = np.frombuffer(audio[: frames * PAYLOAD], dtype=np.uint8).reshape(
            frames, PAYLOAD
        )
        rng = np.random.default_rng(seed if seed is not None else secrets.randbits(64))
        self.packets = np.zeros((legs, PACKET), dtype=np.uint8)
        self.packets[:, 0] = 0x80  # version 2; marker 0, payload type 0 (PCMU)
        self.sequence = rng.integers(0, 1 << 16, legs, dtype=np.uint16)
        self.timestamp = rng.integers(0, 1 << 32, legs, dtype=np.uint32)
        ssrc = rng.integers(0, 1 << 32, legs, dtype=np.uint32)
        self.packets[:, 8:12] = ssrc.astype(">u4").view(np.uint8).reshape(legs, 4)
        self.number = np.zeros(legs, dtype=np.uint32)  # each leg's next frame number
        # each leg starts at its own place in the speech, as the per-leg carriers did
        start = (np.arange(legs, dtype=np.int64) * 7919) % max(1, frames - 1)
        self.position = start.astype(np.int64)
        self.packets[:, HEADER + 16 : HEADER + 20] = (
            np.arange(legs, dtype=">u4").view(np.uint8).reshape(legs, 4)
        )

    def ssrc(self, leg: int) -> int:
        """The SSRC leg ``leg`` sends with (what its SDP declares in ``a=ssrc``)."""
        return int.from_bytes(self.packets[leg, 8:12].tobytes(), "big")

    def advance(self, rows: npt.NDArray[np.intp]) -> None:
        """Write the next frame of each leg in ``rows`` (all but the stamp)."""
        self.sequence[rows] += np.uint16(1)
        self.timestamp[rows] += np.uint32(PAYLOAD)
        packets = self.packets
        packets[rows, 2:4] = self.sequence[rows].astype(">u2").view(np.uint8).reshape(-1, 2)
        packets[rows, 4:8] = self.timestamp[rows].astype(">u4").view(np.uint8).reshape(-1, 4)
        audio = self.audio[self.position[rows]]
        if self.numbered:
            packets[rows, HEADER + 24 :] = audio[:, 24:]
            packets[rows, HEADER + 8 : HEADER + 16] = 0  # the agent writes its stamp here
            numbers = self.number[rows].astype(">u4").view(np.uint8).reshape(-1, 4)
            packets[rows, HEADER + 20 : HEADER + 24] = numbers
        else:
            packets[rows, HEADER:] = audio
        self.number[rows] += np.uint32(1)
        self.position[rows] = (self.position[rows] + 1) % len(self.audio)

    def stamp(self, rows: npt.NDArray[np.intp], now_ns: int) -> None:
        """The carrier's send time in the first 8 payload bytes of ``rows`` (numbered frames)."""
        if self.numbered:
            stamp = np.array([now_ns], dtype=">i8").view(np.uint8)
            self.packets[rows, HEADER : HEADER + 8] = stamp


class ReturnLedger:
    """What came back to the carrier: per leg, which frame numbers, and when (sans I/O)."""

    def __init__(self, legs: int, numbered: bool) -> None:
        self.numbered = numbered
        self.leg_of_port = np.full(1 << 16, -1, dtype=np.int32)
        self.seen = np.zeros((legs, _LEDGER_GROWTH), dtype=np.uint8)
        self.last_arrival = np.zeros(legs, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Start a new measuring window: counts, latencies and inter-arrival times from zero."""
        self.received = 0
        self.latencies: list[npt.NDArray[np.float64]] = []
        self.jitter: list[npt.NDArray[np.float64]] = []
        self.last_arrival[:] = 0

    def expect(self, leg: int, port: int) -> None:
        """Packets from source ``port`` belong to ``leg`` (unless the port is shared)."""
        if self.leg_of_port[port] != SHARED:
            self.leg_of_port[port] = leg

    def share(self, port: int) -> None:
        """Packets from source ``port`` (trunkline's shared RTP port) carry many legs' frames:
        each belongs to the leg its tag names, so only numbered frames can be told apart."""
        if not self.numbered:
            raise ValueError("a shared port's legs are told apart by numbered frames only")
        self.leg_of_port[port] = SHARED

    def take(
        self,
        packets: npt.NDArray[np.uint8],
        lengths: npt.NDArray[Any],
        ports: npt.NDArray[Any],
        arrivals_ns: npt.NDArray[np.int64],
    ) -> None:
        """A batch of received datagrams (rows of ``packets``) and when each arrived."""
        legs = self.leg_of_port[ports]
        shared = legs == SHARED
        if shared.any():  # the leg its tag names (checked against the frame number below)
            named = packets[:, HEADER + 16 : HEADER + 20].copy().view(">u4")[:, 0]
            named = np.where(named < self.seen.shape[0], named, -1).astype(np.int32)
            legs = np.where(shared, named, legs)
        usable = (legs >= 0) & (lengths >= HEADER + TAG.size)
        if not usable.any():
            return
        legs, packets, lengths = legs[usable], packets[usable], lengths[usable]
        arrivals = np.asarray(arrivals_ns, dtype=np.int64)[usable]
        # inter-arrival per leg, in arrival order within the batch as well
        order = np.lexsort((arrivals, legs))
        in_leg, at = legs[order], arrivals[order]
        after_same = np.zeros(len(order), dtype=bool)  # the packet before is the same leg's
        after_same[1:] = in_leg[1:] == in_leg[:-1]
        previous = self.last_arrival[in_leg]
        follows = np.flatnonzero(after_same)
        previous[follows] = at[follows - 1]
        last_of_leg = np.ones(len(order), dtype=bool)
        last_of_leg[:-1] = ~after_same[1:]
        self.last_arrival[in_leg[last_of_leg]] = at[last_of_leg]
        timed = previous > 0
        if timed.any():
            self.jitter.append(np.abs(at[timed] - previous[timed] - FRAME_NS) / 1e6)
        payload_end = HEADER + PAYLOAD
        silence = (lengths == payload_end) & (packets[:, HEADER:payload_end] == SILENCE_BYTE).all(
            axis=1
        )
        audio = ~silence
        if not self.numbered:
            self.received += int(audio.sum())
            return
        tags = np.ascontiguousarray(packets[:, HEADER + 8 : HEADER + 24])
        agent_stamp = tags[:, 0:8].view(">i8")[:, 0]
        tag_leg = tags[:, 8:12].view(">u4")[:, 0]
        number = tags[:, 12:16].view(">u4")[:, 0]
        ours = audio & (tag_leg == legs) & (tag_leg < MAX_LEGS) & (number < MAX_NUMBER)
        if not ours.any():
            return
        self.received += int(ours.sum())
        self.latencies.append((arrivals[ours] - agent_stamp[ours]) / 1e6)
        legs, number = legs[ours], number[ours].astype(np.int64)
        top = int(number.max())
        if top >= self.seen.shape[1]:
            wider = np.zeros((self.seen.shape[0], top + 1 + _LEDGER_GROWTH), dtype=np.uint8)
            wider[:, : self.seen.shape[1]] = self.seen
            self.seen = wider
        self.seen[legs, number] = 1

    def ledger(self, leg: int) -> FrameLedger:
        """Leg ``leg``'s returned frame numbers, in the form ``benchmarks._frames`` counts."""
        return FrameLedger(self.seen[leg].tobytes())

    def latency_samples(self) -> npt.NDArray[np.float64]:
        return np.concatenate(self.latencies) if self.latencies else np.zeros(0)

    def jitter_samples(self) -> npt.NDArray[np.float64]:
        return np.concatenate(self.jitter) if self.jitter else np.zeros(0)


class RtpFleet:
    """Up to ``legs`` calls' RTP on one UDP socket: send a tick, read what comes back."""

    def __init__(
        self,
        legs: int,
        audio: bytes,
        numbered: bool,
        host: str = "127.0.0.1",
        phases: int = PHASES,
    ) -> None:
        self.frames = FrameMatrix(legs, audio, numbered)
        self.returned = ReturnLedger(legs, numbered)
        self.addresses = np.zeros((legs, 16), dtype=np.uint8)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECEIVE_BUFFER)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.sender = BatchSender(self.sock, self.frames.packets, self.addresses)
        self.receiver = BatchReceiver(self.sock, timestamps=True)
        self._drainer: asyncio.TimerHandle | None = None
        self.live: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        self._live_set: set[int] = set()
        self._dirty = False
        self.sent = 0  # frames sent since the last reset
        self.unsent = 0  # frames the kernel refused (socket buffer full): counted, never hidden
        self.recording = True
        if not 1 <= phases <= FRAME_NS // 1_000_000:
            raise ValueError(f"phases must be 1 to {FRAME_NS // 1_000_000}")
        self.phases = phases
        self._bounds = [0] * (phases + 1)  # slot p sends live[_bounds[p]:_bounds[p + 1]]
        self._phase = 0

    @property
    def slot_seconds(self) -> float:
        """How often :meth:`tick` is to be called: the period over the phases."""
        return FRAME_NS / 1e9 / self.phases

    def connect(self, leg: int, host: str, port: int) -> None:
        """Leg ``leg`` sends to (and hears from) ``host:port`` from the next tick on."""
        self.addresses[leg] = np.frombuffer(sockaddr_in(host, port), dtype=np.uint8)
        self.returned.expect(leg, port)
        self._live_set.add(leg)
        self._dirty = True

    def is_live(self, leg: int) -> bool:
        return leg in self._live_set

    def reset(self) -> None:
        self.sent = 0
        self.returned.reset()

    def tick(self, send: bool = True) -> None:
        """The next phase slot: send its live legs' next frame (a few array operations, one
        system call per chunk). ``send=False`` lets the slot pass in silence."""
        phase = self._phase
        self._phase = (phase + 1) % self.phases
        if not send:
            return
        if self._dirty:
            self._select()
        low, high = self._bounds[phase], self._bounds[phase + 1]
        if low == high:
            return
        live = self.live
        self.frames.advance(live[low:high])
        for start in range(low, high, CHUNK):
            stop = min(start + CHUNK, high)
            self.frames.stamp(live[start:stop], time.monotonic_ns())
            done = self.sender.send(start, stop)
            self.unsent += stop - start - done
        self.sent += high - low

    def _select(self) -> None:
        """Order the live legs by phase slot, so each slot's legs are one run of the sends."""
        phases = self.phases
        self.live = np.array(
            sorted(self._live_set, key=lambda leg: (leg % phases, leg)), dtype=np.intp
        )
        self.sender.select(self.live, PACKET)
        self._bounds = np.searchsorted(self.live % phases, np.arange(phases + 1)).tolist()
        self._dirty = False

    def drain(self) -> None:
        """Read everything waiting on the socket, each datagram timed by the kernel."""
        receiver = self.receiver
        while True:
            count = receiver.receive()
            if not count:
                return
            if self.recording:
                now = time.monotonic_ns()
                arrivals = receiver.arrivals_ns(count)
                # the kernel's wall-clock arrival on the monotonic clock the stamps use
                arrivals = np.where(arrivals > 0, arrivals + (now - time.time_ns()), now)
                self.returned.take(receiver.buffer[:count], receiver.lengths[:count],
                                   receiver.ports[:count], arrivals)  # fmt: skip
            if count < receiver.slots:
                return

    def start_reading(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drain the socket every :data:`DRAIN_SECONDS` until :meth:`close`: the kernel times
        each datagram, so a batch read later loses no precision, and the reader costs
        the same at any call count instead of a wake-up per datagram."""

        def drain_and_rearm() -> None:
            self.drain()
            self._drainer = loop.call_later(DRAIN_SECONDS, drain_and_rearm)

        self._drainer = loop.call_later(DRAIN_SECONDS, drain_and_rearm)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            self._drainer = None
        self.sock.close()

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on this socket (its receive buffer was full)."""
        return socket_drops(self.port)


def socket_drops(port: int) -> int:
    """The ``drops`` column of ``/proc/net/udp`` for the local UDP port ``port`` (0: not found)."""
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return 0
    for line in lines:
        fields = line.split()
        if len(fields) > 12 and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return int(fields[-1])
    return 0
