"""Whole-system capacity: how many concurrent calls per core, at what latency and memory.

    python -m benchmarks.load [--profiles recording,mulaw,pcm16,transcription]
                              [--hold 8] [--workers 1] [--runs 3] [--steps a,b,c]
                              [--allow-uncommitted]

For each profile a fresh ``trunkline serve`` (one process, or ``--workers N``)
with an empty data directory, an echo agent process and a carrier process
(SIP signalling and RTP media for every call, carrying synthesized speech
from the bundled piper voice). The carrier ramps concurrent calls in steps
and holds each step for ``--hold`` seconds, measuring over that window:

- trunkline CPU per call (% of one core, all its processes, from /proc) and
  memory per call (resident set size above the idle process, ÷ calls);
- frames lost, by frame number (``benchmarks._frames``): of the frames each
  leg sent inside the window, those not back 0.3 s after it, split into
  carrier → agent and agent → carrier by the agent's own ledger. PCM
  profiles transcode the numbers away and count instead, with quiet window
  edges (no frame is sent for 0.3 s before and after the window), split by
  the frames that reached the agent in the window; call
  set-up time (INVITE → 200 OK, p50/p99) and failed calls;
- latency each way: carrier → agent (agent receipt − carrier send, payload
  bytes 0–8) and agent → carrier (carrier receipt − agent send, bytes 8–16),
  from monotonic-clock stamps in each μ-law payload (PCM profiles transcode
  the stamps away, so their latency is not measured); pacing jitter of
  trunkline's RTP.

A step breaks the service objective when loss > 0.1 %, latency p99 > 20 ms
either way, or a call fails to set up; the ramp stops there and the last good
step is the run's **capacity**. The same round ramps a *floor* per agent
format — bare sockets relaying the same packets to the same agent with no
gateway logic, transcoding per frame for PCM16 as trunkline does, with every
call's RTP on one socket for the ``-shared`` profiles as on trunkline's shared
port — and trunkline's CPU per call is printed as a ratio to the floor's at the
same number of calls. Each step also records the generators' own CPU (carrier
and echo agent), so a step the floor cannot carry says which core was full.

Every profile is ramped ``--runs`` times (default 3; rounds alternate floor
and profiles so machine noise falls on all): each step's figures are the
median over the runs, capacity is the median run's with min–max
(``benchmarks._ramps``). On a machine with two or more cores trunkline (or
the floor relay) runs on cores of its own and the agent and carrier on the
rest (``benchmarks._cores``); calls per core is the capacity carried within
the objectives ÷ those cores, never extrapolated from CPU time. The headline
profile is ``recording``, the default configuration. Code that differs from
its commit is not measured unless ``--allow-uncommitted`` is given (the
result file then says so).

Each round ramps every profile twice on the same floor: trunkline with its C
extension and with its pure-Python twin (``TRUNKLINE_NO_SPEEDUPS=1``), each run
confirmed from its process's start-up log (``benchmarks._media_path``). The
generators are built not to be the limit: the carrier sends every call's RTP
from one socket, a tick at a time in ``sendmmsg`` batches, and reads it back
with ``recvmmsg`` (``benchmarks._rtp_fleet``); the echo agent is a light
WebSocket server protocol (``benchmarks._echo_agent``). The floor uses the same
generators, so "the generators alone miss the objectives" stays a real check.

``mulaw-shared`` and ``recording-shared`` are ``mulaw`` and ``recording`` with
every call on trunkline's shared RTP port (``TRUNKLINE_RTP_SHARED_PORT``): the
carrier declares each call's SSRC in its SDP (``a=ssrc``), a call not answered
on the shared port counts as failed, and what comes back is told apart by the
leg number in its frames (one source port carries every call).

Writes ``benchmarks/results/load.json`` and ``benchmarks/results/load.png``
(CPU per call and latency p99 against concurrent calls).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _media_path as media_path
from benchmarks._cores import CoreSplit, split_cores
from benchmarks._echo_agent import serve_echo
from benchmarks._frames import (
    AGENT_STAMP_OFFSET,
    FrameLedger,
    LedgerBook,
    arrivals_between,
    counted_loss,
    read_tag,
    tag_frame,
    window_loss,
)
from benchmarks._ramps import calls_per_core, first_break, merge_steps, run_capacities
from benchmarks._report import (
    RESULTS_DIR,
    array_percentiles,
    print_table,
    require_committed,
    write_results,
)
from benchmarks._rtp_fleet import PHASES, RtpFleet
from benchmarks.bridge import (
    FRAME,
    GRACE_SECONDS,
    NUMBER,
    RTP_HEADER,
    SILENCE,
    STAMP,
    free_port,
    ledger_path,
    prepare_database,
    role_parsers,
    stop,
    wait_until_listening,
)
from trunkline.codecs.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message
from trunkline.gateway.sip.sdp import parse_sdp

PROFILES: dict[str, dict[str, Any]] = {
    "recording": {"agent_audio": "mulaw8k", "recording": True, "transcription": "off",
                  "steps": [50, 100, 200, 300, 400]},
    "mulaw": {"agent_audio": "mulaw8k", "recording": False, "transcription": "off",
              "steps": [50, 100, 200, 300, 400, 500]},
    "pcm16": {"agent_audio": "pcm16_16k", "recording": False, "transcription": "off",
              "steps": [50, 100, 200, 300, 400]},
    "transcription": {"agent_audio": "mulaw8k", "recording": True, "transcription": "moonshine",
                      "steps": [4, 8, 12, 16, 20, 24, 32]},
    # The same two profiles with every call on trunkline's shared RTP port
    # (TRUNKLINE_RTP_SHARED_PORT): one source, calls told apart by their declared SSRC.
    "mulaw-shared": {"agent_audio": "mulaw8k", "recording": False, "transcription": "off",
                     "shared_port": True, "steps": [50, 100, 200, 300, 400, 500]},
    "recording-shared": {"agent_audio": "mulaw8k", "recording": True, "transcription": "off",
                         "shared_port": True, "steps": [50, 100, 200, 300, 400]},
}  # fmt: skip
MAX_LOSS = 0.001
MAX_LATENCY_P99_MS = 5.0  # added by trunkline, each way
# The floor relay with the load generators, on its own: beyond this p99 (each way) the
# generators are not keeping up, and a step is the machine's limit, not trunkline's.
GENERATOR_LATENCY_P99_MS = 20.0
HOPELESS_LATENCY_MS = 100.0
SETUP_TIMEOUT_SECONDS = 10.0
CALLS_PER_SECOND = 100  # INVITE rate while a step's calls are placed
TARGETS = {"mulaw": 600, "recording": 400, "pcm16": 300,  # calls per core: the goal
           "mulaw-shared": 600, "recording-shared": 400}  # fmt: skip
MEMORY_TARGET_KB = 256
HEADLINE_PROFILE = "recording"  # the default configuration: calls are recorded


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its children (the workers of ``serve --workers N``)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                pids.append(int(entry.name))
    return pids


def tree_cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def tree_rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def summary(samples: list[float] | array.array[float] | np.ndarray) -> dict[str, float | None]:
    """Median and p99 (nearest rank), by partial ordering: a step's samples are ordered
    in the carrier's event loop, which paces every call's packets."""
    if not len(samples):
        return {"p50": None, "p99": None}
    p50, p99 = array_percentiles(np.asarray(samples, dtype=np.float64), (0.5, 0.99))
    return {"p50": p50, "p99": p99}


# -- the echo agent (its own process) -----------------------------------------------------


async def run_agent(port: int, out: Path, stamp: bool) -> None:
    """Echo every media frame (``benchmarks._echo_agent``).

    Stamped (μ-law) frames: record (arrival, carrier→agent latency) and the frame's
    number. Others (PCM): record the arrival time, to count what reached the agent.
    """
    stats = await serve_echo(port, stamp)
    await asyncio.to_thread(out.write_bytes, stats.samples.tobytes())
    await asyncio.to_thread(stats.book.write, ledger_path(out))
    await asyncio.to_thread(arrivals_path(out).write_bytes, stats.arrivals.tobytes())


def arrivals_path(out: Path) -> Path:
    return Path(str(out) + ".arrivals")


# -- the floor (its own process): relays, no gateway logic -------------------------------


async def run_floor(
    calls: int, agent_url: str, ports_out: Path, agent_audio: str, shared: bool
) -> None:
    from benchmarks.bridge import run_floor as bridge_floor

    await bridge_floor(calls, agent_url, ports_out, agent_audio, shared)


def floor_of(profile: dict[str, Any]) -> str:
    """The floor a profile is compared with: its agent format's, on one shared socket for a
    profile on trunkline's shared RTP port (the same sockets either way)."""
    return profile["agent_audio"] + ("-shared" if profile.get("shared_port") else "")


# -- the carrier (its own process) ----------------------------------------------------------


class Leg(asyncio.DatagramProtocol):
    """One call's RTP on a socket of its own: tagged speech frames out, what comes back timed.

    ``benchmarks.load`` itself sends every call's RTP from one ``RtpFleet``; this
    per-call leg is what ``benchmarks.cluster``'s carrier builds on.

    With ``stamp`` (μ-law agents) each frame carries the tag of ``benchmarks._frames``
    and what comes back is numbered in :attr:`returned`; PCM agents transcode the tag
    away, so their frames are plain speech and only counted.
    """

    def __init__(self, index: int, audio: bytes, stamp: bool) -> None:
        self.index = index
        self.audio = audio
        self.offset = (index * 7919 * 160) % max(160, len(audio) - 160)
        self.offset -= self.offset % 160
        self.stamp = stamp
        self.transport: Any = None
        self.remote: tuple[str, int] | None = None
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.ssrc = secrets.randbits(32)
        self.invited_at = 0.0
        self.setup_seconds: float | None = None
        self.failed = False
        self.number = 0  # the next frame's number
        self.returned = FrameLedger()
        self.reset()

    def reset(self) -> None:
        self.sent = 0
        self.received = 0
        self.last_arrival: int | None = None
        self.latencies: array.array[float] = array.array("d")
        self.jitter: array.array[float] = array.array("d")

    def send_frame(self) -> None:
        if self.remote is None:
            return
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + 160) & 0xFFFFFFFF
        frame = self.audio[self.offset : self.offset + 160]
        self.offset = self.offset + 160 if self.offset + 320 <= len(self.audio) else 0
        if self.stamp:
            frame = tag_frame(self.index, self.number, time.monotonic_ns(), frame)
        head = RTP_HEADER.pack(0x80, 0, self.sequence, self.timestamp, self.ssrc)
        self.transport.sendto(head + frame, self.remote)
        self.number += 1
        self.sent += 1

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 28:
            return
        now = time.monotonic_ns()
        if self.last_arrival is not None:
            self.jitter.append(abs((now - self.last_arrival) / 1e6 - FRAME * 1000))
        self.last_arrival = now
        if data[12:] == SILENCE:
            return  # pacing counts, but a silence frame carries no echoed audio
        tag = read_tag(data, 12) if self.stamp else None
        if self.stamp and (tag is None or tag[0] != self.index):
            return  # an echoed concealment frame: not one of ours
        self.received += 1
        if tag is not None:  # the agent's send stamp (payload bytes 8–16), not the carrier's own
            self.latencies.append((now - STAMP.unpack_from(data, 12 + AGENT_STAMP_OFFSET)[0]) / 1e6)
            self.returned.mark(tag[1])


class Call:
    """One call's set-up; its RTP is a leg of the carrier's ``RtpFleet``.

    With ``stamp`` (μ-law agents) each frame carries the tag of ``benchmarks._frames``
    and what comes back is numbered; PCM agents transcode the tag away, so their
    frames are plain speech and only counted.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.invited_at = 0.0
        self.setup_seconds: float | None = None
        self.failed = False


class Signalling(asyncio.DatagramProtocol):
    """INVITEs out, 200 OKs in (ACKed), set-up time per call."""

    def __init__(self, sip_port: int, fleet: RtpFleet, shared_ports: frozenset[int]) -> None:
        self.sip_port = sip_port
        self.fleet = fleet
        self.shared_ports = shared_ports  # when given, every call must be answered on one
        self.transport: Any = None
        self.own_port = 0
        self.pending: dict[str, Call] = {}

    def request(self, method: str, call_id: str, to: str | None = None) -> SipRequest:
        message = SipRequest(method=method, uri=f"sip:{NUMBER}@127.0.0.1:{self.sip_port}")
        message.headers.add(
            "Via", f"SIP/2.0/UDP 127.0.0.1:{self.own_port};branch=z9hG4bK{secrets.token_hex(6)}"
        )
        message.headers.add("From", f"<sip:+14155550100@127.0.0.1>;tag={call_id[:8]}")
        message.headers.add("To", to or f"<sip:{NUMBER}@127.0.0.1>")
        message.headers.add("Call-ID", call_id)
        message.headers.add("CSeq", f"1 {method}")
        message.headers.add("Max-Forwards", "70")
        message.headers.add("Contact", f"<sip:carrier@127.0.0.1:{self.own_port}>")
        return message

    def invite(self, leg: Call) -> None:
        call_id = f"load-{leg.index}-{secrets.token_hex(4)}"
        self.pending[call_id] = leg
        invite = self.request("INVITE", call_id)
        invite.headers.add("Content-Type", "application/sdp")
        invite.body = (  # every call offers the fleet's one RTP port, and its own SSRC
            "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.fleet.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=ssrc:{self.fleet.frames.ssrc(leg.index)} cname:carrier\r\n"
        ).encode()
        leg.invited_at = time.perf_counter()
        self.transport.sendto(invite.serialize(), ("127.0.0.1", self.sip_port))

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse_message(data)
        except ValueError:
            return
        if not isinstance(message, SipResponse) or message.cseq[1] != "INVITE":
            return
        if message.status < 200:
            return
        leg = self.pending.pop(message.call_id, None)
        if leg is None:
            return
        if message.status != 200:
            leg.failed = True
            return
        answer = parse_sdp(message.body)
        if self.shared_ports and answer.port not in self.shared_ports:
            leg.failed = True  # the profile measures the shared port: this call is not on it
            return
        leg.setup_seconds = time.perf_counter() - leg.invited_at
        self.fleet.connect(leg.index, answer.address, answer.port)
        ack = self.request("ACK", message.call_id, to=message.headers.get("To"))
        self.transport.sendto(ack.serialize(), ("127.0.0.1", self.sip_port))


async def run_carrier(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    audio = await asyncio.to_thread(Path(args.audio).read_bytes)
    steps = [int(s) for s in args.steps.split(",")]
    stamp = bool(args.stamp)
    fleet = RtpFleet(max(steps), audio, stamp, phases=args.phases)
    shared_ports = frozenset(int(port) for port in filter(None, args.shared_ports.split(",")))
    for port in shared_ports:  # every call comes back from one of them
        fleet.returned.share(port)
    fleet.start_reading(loop)
    calls: list[Call] = []
    pids = tree_pids(args.pid)
    floor_ports: list[int] = []
    signalling: Signalling | None = None
    if args.floor_ports:
        floor_ports = json.loads(await asyncio.to_thread(Path(args.floor_ports).read_text))
    else:
        signalling = Signalling(args.sip_port, fleet, shared_ports)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: signalling, local_addr=("127.0.0.1", 0)
        )
        signalling.transport = transport
        signalling.own_port = transport.get_extra_info("sockname")[1]
    idle_rss = tree_rss_kb(pids)
    results: list[dict[str, Any]] = []
    sending = True
    paused = False  # PCM only: quiet window edges, so nothing sent outside is in flight

    async def pump() -> None:
        next_tick = loop.time()
        while sending:
            fleet.tick(send=not paused)
            next_tick += fleet.slot_seconds
            await asyncio.sleep(max(0.0, next_tick - loop.time()))

    pump_task = asyncio.create_task(pump())
    out = Path(args.out)
    try:
        for step in steps:
            new = [Call(len(calls) + i) for i in range(step - len(calls))]
            for count, call in enumerate(new):
                if signalling is not None:
                    signalling.invite(call)
                else:
                    fleet.connect(call.index, "127.0.0.1", floor_ports[call.index])
                    call.setup_seconds = 0.0
                if count % 10 == 9:
                    await asyncio.sleep(10 / CALLS_PER_SECOND)
            calls.extend(new)
            deadline = loop.time() + SETUP_TIMEOUT_SECONDS
            while loop.time() < deadline and any(  # noqa: ASYNC110 - answers arrive by callback
                call.setup_seconds is None and not call.failed for call in new
            ):
                await asyncio.sleep(0.05)
            failed = sum(1 for call in new if call.setup_seconds is None)
            await asyncio.sleep(1.0)  # let the new calls settle
            if not stamp:
                paused = True
                await asyncio.sleep(GRACE_SECONDS)  # what was sent before the window comes back
            fleet.reset()
            paused = False
            firsts = fleet.frames.number.copy()
            pids = tree_pids(args.pid)
            unsent0, drops0 = fleet.unsent, fleet.kernel_drops()
            generators = [os.getpid()] + ([args.agent_pid] if args.agent_pid else [])
            generators_cpu0 = tree_cpu_seconds(generators)
            cpu0, wall0, mono0 = tree_cpu_seconds(pids), time.monotonic(), time.monotonic_ns()
            await asyncio.sleep(args.hold)
            cpu, wall = tree_cpu_seconds(pids) - cpu0, time.monotonic() - wall0
            generators_cpu = tree_cpu_seconds(generators) - generators_cpu0
            mono1 = time.monotonic_ns()
            rss = tree_rss_kb(pids)
            live = [call.index for call in calls if fleet.is_live(call.index)]
            numbers = fleet.frames.number
            windows = [(leg, int(firsts[leg]), int(numbers[leg])) for leg in live]
            sent = fleet.sent
            paused = not stamp
            await asyncio.sleep(GRACE_SECONDS)  # what was sent in the window comes back
            if stamp:
                loss = window_loss(windows, {leg: fleet.returned.ledger(leg) for leg in live})
            else:
                loss = counted_loss(sent, fleet.returned.received)
            setups = [call.setup_seconds * 1000 for call in new if call.setup_seconds is not None]
            latency = fleet.returned.latency_samples()
            jitter = fleet.returned.jitter_samples()
            scraped = await asyncio.to_thread(scrape, args.metrics_url) if args.metrics_url else ""
            if scraped:
                await asyncio.to_thread(Path(args.out + ".metrics").write_text, scraped)
            paused = False
            result = {
                "trunkline_metrics": metric_values(scraped),
                "calls": step,
                "answered": len(live),
                "failed_calls": failed,
                "cpu_percent_per_call": 100 * cpu / wall / max(1, len(live)),
                "cpu_percent_total": 100 * cpu / wall,
                # the carrier and the echo agent, in % of one core: near 100 × their cores,
                # they, not the system measured, set the step's latency
                "generators_cpu_percent": 100 * generators_cpu / wall,
                "memory_kb_per_call": max(0, rss - idle_rss) / max(1, len(live)),
                "rss_kb": rss,
                "idle_rss_kb": idle_rss,
                **loss,
                "loss_method": "frame numbers" if stamp else "count, quiet edges",
                "windows": windows,
                "latency_to_carrier_ms": summary(latency),
                "pacing_jitter_ms": summary(jitter),
                "setup_ms": summary(setups),
                "window_monotonic": [mono0 / 1e9, mono1 / 1e9],
                "carrier_unsent": fleet.unsent - unsent0,
                "carrier_socket_drops": fleet.kernel_drops() - drops0,
            }
            results.append(result)
            await asyncio.to_thread(out.write_text, json.dumps(results))
            print(f"step {step} done", flush=True)
            if hopeless(result):
                break
    finally:
        sending = False
        await asyncio.gather(pump_task, return_exceptions=True)
    await asyncio.to_thread(out.write_text, json.dumps(results))
    book = LedgerBook()
    book.ledgers = {call.index: fleet.returned.ledger(call.index) for call in calls}
    await asyncio.to_thread(book.write, ledger_path(out))
    fleet.close(loop)


def scrape(url: str) -> str:

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


WATCHED_METRICS = (
    "trunkline_event_loop_lag_seconds_count",
    "trunkline_event_loop_lag_seconds_sum",
    "trunkline_rtp_packets_dropped_total",
    "trunkline_jitter_buffer_packets_dropped_total",
    "trunkline_jitter_buffer_packets_lost_total",
    "trunkline_jitter_buffer_underruns_total",
    "trunkline_jitter_buffer_target_seconds",
    "trunkline_jitter_buffer_depth_seconds",
    "trunkline_caller_frames_concealed_total",
    "trunkline_playout_frames_dropped_total",
    "trunkline_agent_frames_dropped_total",
    "trunkline_speech_queue_depth",
    "trunkline_speech_jobs_refused_total",
)


def metric_values(text: str) -> dict[str, float]:
    """The watched series of a scrape (labels kept in the key), summed over workers' lines."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(WATCHED_METRICS) or line.startswith(
            "trunkline_event_loop_lag_seconds_bucket"
        ):
            key, _, value = line.rpartition(" ")
            values[key] = values.get(key, 0.0) + float(value)
    return values


def hopeless(step: dict[str, Any]) -> bool:
    """Clearly past capacity: no point ramping further (the objectives are judged later)."""
    p99 = step["latency_to_carrier_ms"]["p99"]
    return (
        step["loss"] > MAX_LOSS
        or step["answered"] < step["calls"]
        or (p99 is not None and p99 > HOPELESS_LATENCY_MS)
    )


def added(ours: float | None, floor: float | None) -> float | None:
    return None if ours is None or floor is None else max(0.0, ours - floor)


def breaks(step: dict[str, Any], floor: dict[str, Any] | None) -> list[str]:
    """Which service objectives a step broke (empty: it held).

    Latency is judged as *added* latency: trunkline's p99 minus the floor's at
    the same number of calls, so the load generators' own delay is not blamed
    on trunkline.
    """
    broken = []
    if step["loss"] > MAX_LOSS:
        broken.append(f"loss {step['loss'] * 100:.2f} %")
    if step["failed_calls"] or step["answered"] < step["calls"]:
        broken.append(
            f"{step['failed_calls']} calls not answered within {SETUP_TIMEOUT_SECONDS:.0f} s"
        )
    for direction, label in (("latency_to_agent_ms", "carrier→agent"),
                             ("latency_to_carrier_ms", "agent→carrier")):  # fmt: skip
        extra = step["added_latency_p99_ms"][direction]
        if extra is not None and extra > MAX_LATENCY_P99_MS:
            broken.append(f"{label} added latency p99 {extra:.1f} ms")
    if floor is not None and floor.get("broken_alone"):
        busy = f"floor relay {floor['cpu_percent_total']:.0f} % of its core(s)"
        if floor.get("generators_cpu_percent") is not None:
            busy += f", carrier and agent {floor['generators_cpu_percent']:.0f} % of one core"
        broken.append(f"the floor relay with the load generators misses the objectives here ({busy}):"
                      " a limit of the measurement, not of trunkline")  # fmt: skip
    return broken


# -- orchestration ----------------------------------------------------------------------


def wait_until_ready(http_port: int, seconds: float = 60.0) -> None:
    """Until ``/readyz`` answers 200: the speech engines are loaded and warmed up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2):
                return
        except OSError:  # 503 while loading (HTTPError), or not answering yet
            time.sleep(0.2)
    raise RuntimeError(f"trunkline on {http_port} not ready within {seconds:.0f} s")


def python(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "benchmarks.load", *args], **kwargs)


def speech_audio(path: Path) -> None:
    """About 20 s of speech from the bundled voice, μ-law 8 kHz, for every call to send."""
    from trunkline.speech.synthesizer import PiperSynthesizer

    voice = PiperSynthesizer()
    lines = [
        "Hello, I am calling about my order from last week.",
        "It has not arrived yet and the tracking page has not changed.",
        "Could you check what happened and call me back this afternoon?",
        "My number is the one I am calling from. Thank you very much.",
    ]
    pause = b"\xff" * 8000  # a second between sentences
    speech = b"".join(b"".join(voice.synthesize(line)) + pause for line in lines)
    # Faint line noise, as on a real line: no frame is digital silence, so an echoed
    # pause is never mistaken for trunkline's own silence frames.
    pcm = np.frombuffer(ulaw_to_pcm16(speech), dtype="<i2").astype(np.int32)
    pcm += np.random.default_rng(7).normal(0, 24, pcm.size).astype(np.int32)
    path.write_bytes(pcm16_to_ulaw(np.clip(pcm, -32768, 32767).astype("<i2").tobytes()))


class Progress:
    """One line per run, redrawn in place: which profile, which step, elapsed time."""

    def __init__(self, total_steps: int) -> None:
        self.total = total_steps
        self.done = 0
        self.started = time.monotonic()

    def show(self, label: str) -> None:
        width = 30
        filled = int(width * self.done / max(1, self.total))
        bar = "#" * filled + "." * (width - filled)
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} {label:<40} {elapsed:5.0f} s")
        sys.stderr.flush()

    def step(self, label: str) -> None:
        self.done += 1
        self.show(label)


def free_port_pairs(pairs: int) -> int:
    """An even port from which ``pairs`` RTP/RTCP pairs were free a moment ago (above the
    default RTP range, where trunkline's per-call ports live)."""
    for _ in range(100):
        first = free_port() & ~1
        if first + 2 * pairs > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + 2 * pairs):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError("no free run of RTP ports for the shared port")


def measure(
    kind: str, name: str, profile: dict[str, Any], steps: list[int], args: argparse.Namespace,
    work: Path, audio: Path, progress: Progress, cores: CoreSplit | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Ramp one system (``trunkline`` or the ``floor``) through ``steps``.

    The system measured runs on ``cores.system``; this process and the load
    generators it starts already run on the others.
    """
    work = Path(tempfile.mkdtemp(prefix=f"{kind}-{name}-", dir=work))
    agent_port = free_port(socket.SOCK_STREAM)
    agent_out = work / f"{kind}-{name}-agent.bin"
    carrier_out = work / f"{kind}-{name}-carrier.json"
    pin = cores.pin_system() if cores is not None else None
    stamp = profile["agent_audio"] == "mulaw8k"
    implementation = "C extension (floor relay)"
    agent = python("agent", str(agent_port), str(agent_out), str(int(stamp)))
    processes = [agent]
    log: Any = None
    try:
        wait_until_listening(agent_port)
        agent_url = f"ws://127.0.0.1:{agent_port}/agent"
        carrier_args = ["carrier", "--phases", str(args.phases), "--agent-pid", str(agent.pid),
                        "--steps", ",".join(map(str, steps)), "--hold", str(args.hold),
                        "--audio", str(audio), "--stamp", str(int(stamp))]  # fmt: skip
        if kind in media_path.KINDS:  # trunkline: its C extension, or its pure-Python twin
            data = work / f"data-{name}"
            data.mkdir()
            asyncio.run(prepare_database(data / "trunkline.db", agent_url, profile["agent_audio"],
                                         recording_enabled=profile["recording"]))  # fmt: skip
            http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
            env = dict(os.environ, TRUNKLINE_DATA_DIR=str(data), TRUNKLINE_HOST="127.0.0.1",
                       TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_SIP_HOST="127.0.0.1",
                       TRUNKLINE_SIP_PORT=str(sip_port), TRUNKLINE_MEDIA_ADDRESS="127.0.0.1",
                       TRUNKLINE_ALLOW_INSECURE_URLS="1", TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
                       TRUNKLINE_LOG_LEVEL="warning", TRUNKLINE_SHUTDOWN_TIMEOUT_SECONDS="1",
                       TRUNKLINE_TRANSCRIPTION=profile["transcription"],
                       TRUNKLINE_READY_WAITS_FOR_SPEECH="1",
                       TRUNKLINE_WORKERS=str(args.workers))  # fmt: skip
            if profile.get("shared_port"):
                shared = free_port_pairs(args.workers)
                env["TRUNKLINE_RTP_SHARED_PORT"] = str(shared)
                carrier_args += ["--shared-ports",
                                 ",".join(str(shared + 2 * n) for n in range(args.workers))]  # fmt: skip
            env = media_path.environment(kind, env)
            log_path = work / f"trunkline-{name}.log"
            log = log_path.open("wb")
            server = subprocess.Popen(
                [sys.executable, "-m", "trunkline", "serve"], env=env, stderr=log, preexec_fn=pin
            )
            processes.append(server)
            wait_until_listening(http_port)
            # Steady state only: the speech models load in the background after start-up.
            wait_until_ready(http_port)
            implementation = media_path.confirm(log_path, kind, processes=args.workers)
            time.sleep(0.5 * args.workers)  # every worker binds before the first INVITE
            if cores is not None:  # the workers inherited it; say so for every process anyway
                cores.repin_system(tree_pids(server.pid))
            carrier_args += ["--sip-port", str(sip_port), "--pid", str(server.pid),
                             "--metrics-url", f"http://127.0.0.1:{http_port}/metrics"]  # fmt: skip
        else:
            ports_file = work / f"floor-{name}-ports.json"
            shared_floor = ["--shared"] if profile.get("shared_port") else []
            floor = python("floor", str(max(steps)), agent_url, str(ports_file),
                           "--agent-audio", profile["agent_audio"], *shared_floor,
                           preexec_fn=pin)  # fmt: skip
            processes.append(floor)
            deadline = time.monotonic() + 60
            while not ports_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            carrier_args += ["--floor-ports", str(ports_file), "--pid", str(floor.pid)]
            if shared_floor:  # every call comes back from the floor's one port
                carrier_args += ["--shared-ports", str(json.loads(ports_file.read_text())[0])]
        carrier = python(*carrier_args, "--out", str(carrier_out), stdout=subprocess.PIPE)
        processes.append(carrier)
        assert carrier.stdout is not None
        for line in carrier.stdout:
            if line.startswith(b"step"):
                progress.step(f"{kind} {name}: {line.split()[1].decode()} calls")
        if carrier.wait(60) != 0:
            logs = "".join(p.read_text(errors="replace")[-3000:] for p in work.glob("*.log"))
            raise RuntimeError(f"carrier failed for {kind} {name}\n{logs}")
    finally:
        for process in reversed(processes):
            stop(process)
        if log is not None:
            log.close()
    steps_measured: list[dict[str, Any]] = json.loads(carrier_out.read_text())
    for result in steps_measured:
        result["media_path"] = implementation
    scrape_file = Path(str(carrier_out) + ".metrics")
    if steps_measured and scrape_file.exists():
        steps_measured[-1]["promtool_check"] = promtool_check(scrape_file.read_text())
    agent_samples = array.array("d")
    if agent_out.exists():
        agent_samples.frombytes(agent_out.read_bytes())
    returned = LedgerBook.read(ledger_path(carrier_out)).ledgers
    at_agent = LedgerBook.read(ledger_path(agent_out)).ledgers
    arrivals = array.array("d")
    if arrivals_path(agent_out).exists():
        arrivals.frombytes(arrivals_path(agent_out).read_bytes())
    for result in steps_measured:
        windows = [tuple(window) for window in result.pop("windows")]
        start, end = result["window_monotonic"]
        if stamp:  # numbered frames: the agent's ledger splits the loss by direction
            result.update(window_loss(windows, returned, at_agent))
        else:  # quiet edges: what reached the agent from the window's start to its grace's end
            sent, lost = result["frames_sent"], result["frames_lost"]
            reached = arrivals_between(arrivals, start, end + GRACE_SECONDS)
            result.update(counted_loss(sent, sent - lost, reached))
        window = [agent_samples[i + 1] for i in range(0, len(agent_samples), 2)
                  if start <= agent_samples[i] <= end]  # fmt: skip
        result["latency_to_agent_ms"] = summary(window) if stamp else summary([])
        if not stamp:
            result["latency_to_carrier_ms"] = summary([])
    return steps_measured


def promtool_check(scrape: str) -> str:
    """``promtool check metrics`` on a scrape taken under load ("ok", its complaints, or why not)."""
    import shutil

    if shutil.which("promtool") is None:
        return "promtool not installed"
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=scrape.encode(), capture_output=True, timeout=30
    )
    output = (checked.stdout + checked.stderr).decode(errors="replace").strip()
    return "ok" if checked.returncode == 0 and not output else output[:2000]


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cpu_axis, latency_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, result in results["profiles"].items():
        twin = result["pure_python"]["trunkline"]
        cpu_axis.plot([s["calls"] for s in twin], [s["cpu_percent_per_call"] for s in twin], "-.",
                      marker=".", label=f"{name} (pure Python)")  # fmt: skip
        steps = result["trunkline"]
        calls = [s["calls"] for s in steps]
        cpu_axis.plot(calls, [s["cpu_percent_per_call"] for s in steps], marker="o", label=name)
        for direction, style in (("latency_to_agent_ms", "-"), ("latency_to_carrier_ms", "--")):
            values = [s["added_latency_p99_ms"][direction] for s in steps]
            if any(v is not None for v in values):
                arrow = "→agent" if direction == "latency_to_agent_ms" else "→carrier"
                latency_axis.plot(calls, values, style, marker="o", label=f"{name} {arrow}")
    for agent_audio, floor in (results.get("floor") or {}).items():
        cpu_axis.plot([s["calls"] for s in floor], [s["cpu_percent_per_call"] for s in floor],
                      ":", marker="x", label=f"floor {agent_audio} (bare relay)")  # fmt: skip
    cpu_axis.axhline(0.25, color="grey", linewidth=0.8, linestyle="--")
    cpu_axis.set(xlabel="concurrent calls", ylabel="CPU per call (% of one core)",
                 title="trunkline CPU per call", xscale="log")  # fmt: skip
    latency_axis.axhline(MAX_LATENCY_P99_MS, color="red", linewidth=0.8, linestyle="--",
                         label="objective")  # fmt: skip
    latency_axis.set(xlabel="concurrent calls", ylabel="added latency p99 (ms)",
                     title="latency trunkline adds, p99 each way (μ-law profiles)",
                     xscale="log", yscale="symlog")  # fmt: skip
    latency_axis.set_ylim(bottom=0)
    for axis in (cpu_axis, latency_axis):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(
        f"benchmarks.load — {results['machine_cpus']} CPUs, {results['workers']} worker(s)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    carrier = role_parsers(parser)
    carrier.add_argument("--steps", required=True)
    carrier.add_argument("--hold", type=float, required=True)
    carrier.add_argument("--audio", required=True)
    carrier.add_argument("--stamp", type=int, default=1)
    carrier.add_argument("--metrics-url", default="")
    carrier.add_argument("--shared-ports", default="", help="trunkline's shared RTP ports (a,b)")
    carrier.add_argument("--agent-pid", type=int, default=0, help="the echo agent (its CPU)")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--hold", type=float, default=8.0, help="seconds each step is held")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steps", default="", help="override every profile's steps (a,b,c)")
    parser.add_argument("--runs", type=int, default=3, help="ramps per profile (median reported)")
    parser.add_argument(
        "--phases",
        type=int,
        default=PHASES,
        help="slots of the 20 ms period the calls' RTP clocks are spread over (1: one burst)",
    )
    parser.add_argument(
        "--allow-uncommitted",
        action="store_true",
        help="measure code that differs from its commit (results are marked)",
    )
    args = parser.parse_args()
    if args.role in ("agent", "floor", "carrier"):
        import uvloop

        coroutine = {
            "agent": lambda: run_agent(args.port, args.out, bool(args.stamp)),
            "floor": lambda: run_floor(args.calls, args.agent_url, args.ports_out,
                                       args.agent_audio, args.shared),
            "carrier": lambda: run_carrier(args),
        }[args.role]()  # fmt: skip
        uvloop.run(coroutine)
        return
    names = [n for n in args.profiles.split(",") if n]
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        parser.error(f"unknown profiles {unknown}; choose from {', '.join(PROFILES)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    require_committed(args.allow_uncommitted)
    cores = split_cores(args.workers)
    override = [int(s) for s in args.steps.split(",") if s]
    plans = {n: override or PROFILES[n]["steps"] for n in names}
    floor_plans: dict[str, list[int]] = {}
    for name in names:
        floor_name = floor_of(PROFILES[name])
        floor_plans[floor_name] = sorted(set(floor_plans.get(floor_name, [])) | set(plans[name]))
    per_round = len(media_path.KINDS) * sum(len(s) for s in plans.values()) + sum(
        len(s) for s in floor_plans.values()
    )
    progress = Progress(per_round * args.runs)
    results: dict[str, Any] = {"hold_seconds": args.hold, "workers": args.workers,
                               "carrier_phases": args.phases,
                               "runs": args.runs, "machine_cpus": os.cpu_count(),
                               "cores": cores.describe() if cores is not None else None,
                               "headline_profile": HEADLINE_PROFILE if HEADLINE_PROFILE in names
                               else None, "profiles": {},
                               "objectives": {"max_loss": MAX_LOSS,
                                              "max_latency_p99_ms": MAX_LATENCY_P99_MS,
                                              "generator_latency_p99_ms":
                                                  GENERATOR_LATENCY_P99_MS,
                                              "failed_calls": 0}}  # fmt: skip
    floor_runs: dict[str, list[list[dict[str, Any]]]] = {f: [] for f in floor_plans}
    profile_runs: dict[str, dict[str, list[list[dict[str, Any]]]]] = {
        kind: {n: [] for n in names} for kind in media_path.KINDS
    }
    with tempfile.TemporaryDirectory(prefix="trunkline-load-") as tmp:
        work = Path(tmp)
        audio = work / "speech.ulaw"
        progress.show("synthesizing caller speech")
        speech_audio(audio)
        for round_number in range(1, args.runs + 1):  # each round: floors, then every profile
            for floor_name, floor_steps in floor_plans.items():
                floor_profile = {"agent_audio": floor_name.removesuffix("-shared"),
                                 "shared_port": floor_name.endswith("-shared")}  # fmt: skip
                floor = measure("floor", f"{floor_name}-{round_number}", floor_profile,
                                floor_steps, args, work, audio, progress, cores)  # fmt: skip
                for step in floor:
                    step["broken_alone"] = broken_alone(step)
                floor_runs[floor_name].append(floor)
            for name in names:  # the C extension, then its pure-Python twin, on the same floor
                floors = {s["calls"]: s for s in floor_runs[floor_of(PROFILES[name])][-1]}
                for kind in media_path.KINDS:
                    steps = measure(kind, f"{name}-{kind}-{round_number}", PROFILES[name],
                                    plans[name], args, work, audio, progress, cores)  # fmt: skip
                    judge(steps, floors)
                    profile_runs[kind][name].append(steps)
    sys.stderr.write("\n")
    results["floor"] = {fmt: merge_steps(runs) for fmt, runs in floor_runs.items()}
    trunkline_cores = len(cores.system) if cores is not None else None
    for name in names:
        results["profiles"][name] = {
            "settings": PROFILES[name] | {"steps": plans[name]},
            "media_path": media_path.KINDS["trunkline"],
            **ramp_summary(profile_runs["trunkline"][name], trunkline_cores),
            "target_calls": TARGETS.get(name),
            "pure_python": {
                "media_path": media_path.KINDS["pure_python"],
                **ramp_summary(profile_runs["pure_python"][name], trunkline_cores),
            },
        }
    print_summary(results)
    write_results("load", results)
    png = RESULTS_DIR / "load.png"
    chart(results, png)
    print(f"wrote {png}")


def ramp_summary(runs: list[list[dict[str, Any]]], cores: int | None) -> dict[str, Any]:
    """One profile's ramps of one kind: the median ramp, capacity per run, what stopped each."""
    capacities = run_capacities(runs)
    return {
        "trunkline": merge_steps(runs),
        "capacity_calls": capacities["median"],
        "capacity_per_run": capacities,
        "limited_by": [
            f"run {i}: " + ("; ".join(first_break(run)) or "not reached")
            for i, run in enumerate(runs, 1)
        ],
        "calls_per_core": calls_per_core(capacities, cores),
        "ramp_reached_limit": all(first_break(run) for run in runs),
        "promtool_check_under_load": runs[-1][-1].get("promtool_check") if runs[-1] else None,
        "runs": runs,
    }


def broken_alone(step: dict[str, Any]) -> bool:
    """Whether the bare relay with the load generators misses the objectives at this step."""
    return bool(
        step["loss"] > MAX_LOSS
        or step["answered"] < step["calls"]
        or (step["latency_to_carrier_ms"]["p99"] or 0) > GENERATOR_LATENCY_P99_MS
        or (step["latency_to_agent_ms"]["p99"] or 0) > GENERATOR_LATENCY_P99_MS
    )


def judge(steps: list[dict[str, Any]], floors: dict[int, dict[str, Any]]) -> None:
    """Compare each step with the same round's floor at the same calls; record what broke."""
    for step in steps:
        floor = floors.get(step["calls"])
        reference = floor["cpu_percent_per_call"] if floor else None
        step["cpu_ratio_to_floor"] = step["cpu_percent_per_call"] / reference if reference else None
        step["added_latency_p99_ms"] = {
            d: added(step[d]["p99"], floor[d]["p99"] if floor else None)
            for d in ("latency_to_agent_ms", "latency_to_carrier_ms")
        }
        step["broken"] = breaks(step, floor)


def print_summary(results: dict[str, Any]) -> None:
    rows = []
    variants = [(name, label, summary_)
                for name, result in results["profiles"].items()
                for label, summary_ in (("C", result), ("py", result["pure_python"]))]  # fmt: skip
    for name, label, summary_ in variants:
        for step in summary_["trunkline"]:
            rows.append([
                name, label, step["calls"], f"{step['runs_held']}/{results['runs']}",
                step["cpu_percent_per_call"], step["cpu_ratio_to_floor"] or 0.0,
                step["memory_kb_per_call"], _loss(step), _pair(step["latency_to_agent_ms"]),
                _pair(step["latency_to_carrier_ms"]), _added(step["added_latency_p99_ms"]),
                _pair(step["pacing_jitter_ms"]),
                _pair(step["setup_ms"]), "; ".join(step["broken"]) or "ok",
            ])  # fmt: skip
    print_table(
        ["profile", "media", "calls", "held", "CPU %/call", "×floor", "KB/call", "loss % (→a/→c)",
         "→agent p50/p99", "→carrier p50/p99", "added p99 →a/→c", "jitter p50/p99",
         "set-up p50/p99 ms", "objective (median of runs)"],
        rows,
    )  # fmt: skip
    for name, label, summary_ in variants:
        spread_ = summary_["capacity_per_run"]
        per_core = summary_["calls_per_core"]
        print(f"{name} ({label}): capacity {spread_['median']} concurrent calls "
              f"(runs: {', '.join(map(str, spread_['per_run']))})"
              + (f"; {per_core['median']:.0f} calls per trunkline core" if per_core else ""))  # fmt: skip


def _loss(step: dict[str, Any]) -> str:
    total = f"{step['loss'] * 100:.2f}"
    if not step.get("to_agent") or not step.get("to_carrier"):
        return total
    return f"{total} ({step['to_agent']['loss'] * 100:.2f}/{step['to_carrier']['loss'] * 100:.2f})"


def _added(pair: dict[str, float | None]) -> str:
    values = list(pair.values())
    if all(v is None for v in values):
        return "-"
    return " / ".join("-" if v is None else f"{v:.1f}" for v in values)


def _pair(pair: dict[str, float | None]) -> str:
    if pair.get("p50") is None:
        return "-"
    return f"{pair['p50']:.1f} / {pair['p99']:.1f}"


if __name__ == "__main__":
    main()
