"""Scale-out: one node against two behind Kamailio, in the same run.

    python -m benchmarks.cluster [--runs 3] [--setup-calls 600] [--in-flight 40]
                                 [--steps 10,20,40,...,400] [--hold 5]
                                 [--node-cpu-percent 35] [--allow-uncommitted]

Each run measures two clusters in turn, 1 node then 2 nodes (rounds alternate
which goes first, so machine noise falls on both): real ``trunkline serve``
nodes on 127.0.0.2 and 127.0.0.3 (a fresh PostgreSQL database shared by the
nodes, default settings: calls recorded, caller jitter buffer on), Kamailio
with the shipped ``deploy/kamailio/kamailio.cfg`` on 127.0.0.1 in front, an
echo agent process (``benchmarks.load``'s) and a carrier process that sends
everything through Kamailio (ACK and BYE follow the Record-Route set). Two
figures per cluster:

- **call set-up rate**: ``--setup-calls`` calls placed with at most
  ``--in-flight`` INVITEs outstanding; each is acknowledged when answered and
  hung up (BYE) right after, so every call goes through its whole life
  (stored, answered, recorded, ended, its events written). Calls per second =
  answered calls ÷ the time from the first INVITE to the last answer; p50/p99
  of INVITE → 180 Ringing (the node has looked the number up and stored the
  call) and of INVITE → 200 OK.
- **concurrent calls held**: a ramp like ``benchmarks.load``'s, each step held
  ``--hold`` seconds with every call sending numbered, time-stamped μ-law
  frames (``benchmarks._frames``) that the agent echoes. A step holds when
  every call was answered, no more than 0.1 % of the window's frames failed to
  come back, and the round trip (carrier → node → agent → node → carrier) p99
  is at most 60 ms plus the most the nodes' caller jitter buffer may hold
  (``jitter_max_ms``, 60 ms by default). Capacity is the last step held.

Scaling efficiency is the 2-node figure ÷ the 1-node figure (target ≥ 1.8),
taken run by run; the median of ``--runs`` runs (default 3) is published with
its min–max. Where each process runs (:func:`plan_layout`):

- **more cores than nodes**: node i on core i, a core of its own; Kamailio,
  PostgreSQL, the agent and the carrier on the other cores. This is the
  layout that measures scale-out.
- **as many cores as nodes** (2): node i on core i, and each node under a
  CPU quota (``--node-cpu-percent``, 35 % of its core by default;
  ``benchmarks._cpu_quota``); Kamailio, PostgreSQL, the agent and the
  carrier are not pinned. Without the quota the machine, not the nodes, runs
  full first: the shared parts need the CPU a second node would use, and the
  ratio would measure the machine. With it each node is a fixed budget of
  CPU and the machine keeps headroom, so a second node adds one budget's
  worth; per-node figures are then per quota, not per core.
- **one core**: nothing pinned; the ratio measures overhead, not scale-out.

The CPU each part used (every node, the carrier, the agent, Kamailio,
PostgreSQL's server processes), the whole machine's CPU and how often each
node's quota ran out are recorded for the set-up test and each held step, so
the result says what the limit was (the set-up test's ``setup_limited_by``);
so are the caller packets the nodes themselves dropped in each held window
(their ``/metrics``: the jitter buffer's late, shrink and overflow drops).
A carrier or agent at a full core, or the machine over 95 % busy, breaks a
step as a generator or machine limit. The machine's 1-minute load average is
recorded before and after each cluster: other work on a shared machine takes
CPU from every part.

PostgreSQL is ``--database-url`` (a server whose user may create databases),
else a throwaway cluster of the test suite's (``tests.postgres_server``).
Code that differs from its commit is not measured unless
``--allow-uncommitted`` is given. Writes ``benchmarks/results/cluster.json``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from benchmarks._cpu_quota import CpuQuota
from benchmarks._frames import CARRIER_STAMP, window_loss
from benchmarks._report import percentile, print_table, require_committed, write_results
from benchmarks._seed import NUMBER, seed_database
from benchmarks.bridge import GRACE_SECONDS, SILENCE, stop, wait_until_listening
from benchmarks.load import Leg, tree_cpu_seconds, tree_pids
from trunkline.codecs.g711 import pcm16_to_ulaw
from trunkline.config.groups import MediaSettings
from trunkline.gateway.sip.header_values import Address
from trunkline.gateway.sip.message import SipRequest, parse_message, response_to

MAX_LOSS = 0.001
# Round trip p99: the nodes' caller jitter buffer may hold up to its configured
# maximum (the default, as the nodes run with it) on top of 60 ms for the rest.
JITTER_MAX_MS = MediaSettings().jitter_max_ms
MAX_ROUND_TRIP_P99_MS = 60.0 + JITTER_MAX_MS
SETUP_TIMEOUT_SECONDS = 10.0
CALLS_PER_SECOND = 100  # INVITE rate while a step's calls are placed
TARGET_SCALING = 1.8
GENERATOR_SATURATED_PERCENT = 90.0  # the carrier's or the agent's CPU, % of one core
MACHINE_SATURATED_PERCENT = 95.0  # every core's CPU together, % of all of them
NODE_CPU_PERCENT_SHARED = 35.0  # each node's quota when the nodes have no core to spare
CONFIGURATIONS = (1, 2)  # nodes


# -- the carrier (its own process): SIP through Kamailio, RTP straight to the nodes --------


class Dialog:
    """One call as the carrier (UAC) keeps it: enough to ACK and BYE through the route set."""

    __slots__ = ("call_id", "tag", "invited_at", "rang_at", "answered_at", "to", "target",
                 "routes", "leg", "failed", "ended")  # fmt: skip

    def __init__(self, leg: Leg | None) -> None:
        self.call_id = f"cluster-{secrets.token_hex(8)}"
        self.tag = secrets.token_hex(4)
        self.invited_at = 0.0
        self.rang_at: float | None = None  # 180 Ringing: the node has stored the call
        self.answered_at: float | None = None
        self.to = ""
        self.target = ""
        self.routes: list[str] = []
        self.leg = leg
        self.failed = False
        self.ended = False


class ProxiedSignalling(asyncio.DatagramProtocol):
    """INVITEs to Kamailio; ACK and BYE with the Record-Route set as Route (RFC 3261 §12.1.2)."""

    def __init__(self, proxy: tuple[str, int], rtp_port: int) -> None:
        self.proxy = proxy
        self.rtp_port = rtp_port  # where the set-up phase's calls ask for media (unread)
        self.transport: Any = None
        self.own_port = 0
        self.dialogs: dict[str, Dialog] = {}
        self.cseq = 1
        self.hang_up_on_answer = False  # the set-up test: BYE right after the ACK

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.own_port = transport.get_extra_info("sockname")[1]

    def _request(self, method: str, dialog: Dialog, uri: str, cseq: int) -> SipRequest:
        message = SipRequest(method=method, uri=uri)
        message.headers.add(
            "Via", f"SIP/2.0/UDP 127.0.0.1:{self.own_port};branch=z9hG4bK{secrets.token_hex(8)}"
        )
        message.headers.add("Max-Forwards", "70")
        message.headers.add("From", f"<sip:+14155550100@127.0.0.1>;tag={dialog.tag}")
        message.headers.add("To", dialog.to or f"<sip:{NUMBER}@127.0.0.1>")
        message.headers.add("Call-ID", dialog.call_id)
        message.headers.add("CSeq", f"{cseq} {method}")
        message.headers.add("Contact", f"<sip:carrier@127.0.0.1:{self.own_port}>")
        for route in dialog.routes:
            message.headers.add("Route", route)
        return message

    def invite(self, dialog: Dialog) -> None:
        self.dialogs[dialog.call_id] = dialog
        uri = f"sip:{NUMBER}@{self.proxy[0]}:{self.proxy[1]}"
        invite = self._request("INVITE", dialog, uri, 1)
        port = self.rtp_port
        if dialog.leg is not None:
            port = dialog.leg.transport.get_extra_info("sockname")[1]
        invite.headers.add("Content-Type", "application/sdp")
        invite.body = (
            "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ).encode()
        dialog.invited_at = time.perf_counter()
        self.transport.sendto(invite.serialize(), self.proxy)

    def bye(self, dialog: Dialog) -> None:
        self.transport.sendto(
            self._request("BYE", dialog, dialog.target, 2).serialize(), self.proxy
        )

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse_message(data)
        except ValueError:
            return
        if isinstance(message, SipRequest):  # a BYE (or OPTIONS) from a node, via Kamailio
            if message.method != "ACK":
                self.transport.sendto(response_to(message, 200).serialize(), addr)
            dialog = self.dialogs.get(message.call_id)
            if dialog is not None and message.method == "BYE":
                dialog.ended = True
            return
        dialog = self.dialogs.get(message.call_id)
        if dialog is not None and message.status == 180 and dialog.rang_at is None:
            dialog.rang_at = time.perf_counter()
        if dialog is None or message.status < 200:
            return
        method = message.cseq[1]
        if method == "BYE":
            dialog.ended = True
            return
        if method != "INVITE":
            return
        if message.status >= 300:
            dialog.failed = True  # Kamailio ACKs the non-2xx hop by hop; ours is owed too
            dialog.to = message.headers.get("To") or ""
            ack = self._request("ACK", dialog, f"sip:{NUMBER}@{self.proxy[0]}:{self.proxy[1]}", 1)
            ack.headers.set("Via", message.headers.get("Via") or "")
            self.transport.sendto(ack.serialize(), self.proxy)
            return
        first = dialog.answered_at is None
        if first:
            dialog.answered_at = time.perf_counter()
            dialog.to = message.headers.get("To") or ""
            contact = message.headers.get("Contact") or ""
            dialog.target = Address.parse(contact).uri if contact else f"sip:{NUMBER}@127.0.0.1"
            dialog.routes = list(reversed(message.headers.get_all("Record-Route")))
            if dialog.leg is not None:
                dialog.leg.setup_seconds = dialog.answered_at - dialog.invited_at
                dialog.leg.remote = _media_of(message.body)
        self.transport.sendto(
            self._request("ACK", dialog, dialog.target, 1).serialize(), self.proxy
        )
        if first and self.hang_up_on_answer:
            self.bye(dialog)


def _media_of(sdp: bytes) -> tuple[str, int]:
    from trunkline.gateway.sip.sdp import parse_sdp

    answer = parse_sdp(sdp)
    return (answer.address, answer.port)


class TimedLeg(Leg):
    """``benchmarks.load``'s leg, also timing each echoed frame's round trip."""

    def __init__(self, index: int, audio: bytes) -> None:
        super().__init__(index, audio, True)
        self.round_trips: array.array[float] = array.array("d")

    def reset(self) -> None:
        super().reset()
        self.round_trips = array.array("d")

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        super().datagram_received(data, addr)
        if len(data) >= 28 and data[12:] != SILENCE:
            sent = CARRIER_STAMP.unpack_from(data, 12)[0]
            self.round_trips.append((time.monotonic_ns() - sent) / 1e6)


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every core together since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


class CpuMeter:
    """CPU time of each part of the cluster (a process and its children), read from /proc,
    the whole machine's, and how often each node's CPU quota (if any) ran out.

    The process trees are listed when a window starts, so a window counts the
    processes that lived through it; the carrier counts itself.
    """

    def __init__(self, parts: dict[str, int], quotas: dict[str, Path] | None = None) -> None:
        self.parts = {name: pid for name, pid in parts.items() if pid > 0}
        self.quotas = {name: CpuQuota.at(path) for name, path in (quotas or {}).items()}
        self._trees: dict[str, list[int]] = {}
        self._start: dict[str, float] = {}
        self._machine = (0, 0)
        self._throttling: dict[str, dict[str, float]] = {}
        self._wall = 0.0

    def start(self) -> None:
        self._trees = {name: tree_pids(pid) for name, pid in self.parts.items()}
        self._start = self._read()
        self._machine = machine_cpu_ticks()
        self._throttling = {name: quota.throttling() for name, quota in self.quotas.items()}
        self._wall = time.monotonic()

    def machine_percent(self) -> float:
        """Every core's CPU since ``start``, in % of all of them."""
        busy, total = machine_cpu_ticks()
        return 100 * (busy - self._machine[0]) / max(1, total - self._machine[1])

    def throttled(self) -> dict[str, float]:
        """Per node under a quota: % of the periods since ``start`` in which the quota ran out."""
        shares = {}
        for name, quota in self.quotas.items():
            now, then = quota.throttling(), self._throttling.get(name, {})
            periods = now["periods"] - then.get("periods", 0.0)
            throttled = now["throttled_periods"] - then.get("throttled_periods", 0.0)
            shares[name] = 100 * throttled / periods if periods else 0.0
        return shares

    def _read(self) -> dict[str, float]:
        seconds = {name: tree_cpu_seconds(pids) for name, pids in self._trees.items()}
        seconds["carrier"] = own_cpu_seconds()
        return seconds

    def percent(self) -> dict[str, float]:
        """Each part's CPU since ``start``, in % of one core."""
        wall = max(1e-6, time.monotonic() - self._wall)
        now = self._read()
        return {name: 100 * (now[name] - self._start[name]) / wall for name in now}


DROP_COUNTERS = {
    "trunkline_jitter_buffer_packets_dropped_total": "jitter",
    "trunkline_rtp_packets_dropped_total": "rtp",
}
_REASON = re.compile(r'reason="([^"]*)"')


def drop_counts(metrics_text: str) -> Counter[str]:
    """A node's own counts of caller packets it dropped (``jitter_late``, ``rtp_…``), from
    its ``/metrics``."""
    counts: Counter[str] = Counter()
    for line in metrics_text.splitlines():
        name, brace, rest = line.partition("{")
        where = DROP_COUNTERS.get(name)
        if where is None or not brace:
            continue
        labels, _, value = rest.partition("}")
        reason = _REASON.search(labels)
        counts[f"{where}_{reason.group(1) if reason else 'other'}"] += int(float(value))
    return counts


async def scrape_drops(http: aiohttp.ClientSession, base_urls: list[str]) -> Counter[str]:
    """The drops every node counted so far (a node that does not answer counts nothing)."""
    total: Counter[str] = Counter()
    for url in base_urls:
        try:
            async with http.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=5)) as got:
                total.update(drop_counts(await got.text()))
        except (aiohttp.ClientError, TimeoutError):
            continue
    return total


def p50_p99(samples: list[float] | array.array[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p99": None}
    ordered = sorted(samples)
    return {"p50": percentile(ordered, 0.5), "p99": percentile(ordered, 0.99)}


async def setup_rate(
    signalling: ProxiedSignalling, calls: int, in_flight: int, meter: CpuMeter | None = None
) -> dict[str, Any]:
    """Place ``calls`` calls, at most ``in_flight`` unanswered at once; hang each up at once."""
    dialogs = [Dialog(None) for _ in range(calls)]
    loop = asyncio.get_running_loop()
    signalling.hang_up_on_answer = True
    if meter is not None:
        meter.start()
    started = time.perf_counter()
    pending: list[Dialog] = []
    for dialog in dialogs:
        while True:
            pending = [d for d in pending if d.answered_at is None and not d.failed
                       and time.perf_counter() - d.invited_at < SETUP_TIMEOUT_SECONDS]  # fmt: skip
            if len(pending) < in_flight:
                break
            await asyncio.sleep(0.002)
        signalling.invite(dialog)
        pending.append(dialog)
    deadline = loop.time() + SETUP_TIMEOUT_SECONDS
    while loop.time() < deadline and any(  # noqa: ASYNC110 - answers arrive by callback
        d.answered_at is None and not d.failed for d in dialogs
    ):
        await asyncio.sleep(0.01)
    answered = [d for d in dialogs if d.answered_at is not None]
    cpu = meter.percent() if meter is not None else {}
    signalling.hang_up_on_answer = False
    last = max((d.answered_at for d in answered if d.answered_at is not None), default=started)
    elapsed = max(1e-6, last - started)
    deadline = loop.time() + 5.0
    while loop.time() < deadline and not all(d.ended for d in answered):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    setups = [(d.answered_at - d.invited_at) * 1000 for d in answered if d.answered_at]
    rings = [(d.rang_at - d.invited_at) * 1000 for d in answered if d.rang_at]
    return {
        "calls": calls,
        "in_flight": in_flight,
        "answered": len(answered),
        "failed_calls": calls - len(answered),
        "hung_up": sum(1 for d in answered if d.ended),
        "seconds": elapsed,
        "calls_per_second": len(answered) / elapsed,
        "setup_ms": p50_p99(setups),
        "ringing_ms": p50_p99(rings),  # INVITE → 180: looked up and stored by the node
        "cpu_percent": cpu,  # of one core, per part, from the first INVITE to the last answer
        "machine_cpu_percent": meter.machine_percent() if meter is not None else None,
        "nodes_throttled": meter.throttled() if meter is not None else {},
    }


async def run_carrier(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    proxy = ("127.0.0.1", args.kamailio_port)
    pids = [int(p) for p in args.pids.split(",")]
    quotas = [Path(path) for path in args.quotas.split(",") if path]
    meter = CpuMeter(
        {f"node_{i}": pid for i, pid in enumerate(pids)}
        | {"agent": args.agent_pid, "kamailio": args.kamailio_pid, "postgres": args.postgres_pid},
        {f"node_{i}": path for i, path in enumerate(quotas)},
    )
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 400, 8000 * 20).astype("<i2").tobytes()  # 20 s of line noise
    audio = pcm16_to_ulaw(noise)
    sink, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    signalling = ProxiedSignalling(proxy, sink.get_extra_info("sockname")[1])
    await loop.create_datagram_endpoint(lambda: signalling, local_addr=("127.0.0.1", 0))
    results: dict[str, Any] = {"setup": None, "steps": []}
    out = Path(args.out)
    if args.setup_calls:
        results["setup"] = await setup_rate(signalling, args.setup_calls, args.in_flight, meter)
        print("setup done", flush=True)
        await asyncio.sleep(2.0)  # the nodes finish storing those calls
    legs: list[TimedLeg] = []
    sending = True

    async def pump() -> None:
        next_tick = loop.time()
        while sending:
            for leg in legs:
                leg.send_frame()
            next_tick += 0.020
            await asyncio.sleep(max(0.0, next_tick - loop.time()))

    pump_task = asyncio.create_task(pump())
    http = aiohttp.ClientSession()
    node_urls = [url for url in args.node_urls.split(",") if url]
    try:
        for step in [int(s) for s in args.steps.split(",") if s]:
            new = [TimedLeg(len(legs) + i, audio) for i in range(step - len(legs))]
            for leg in new:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda leg=leg: leg,  # type: ignore[misc]
                    local_addr=("127.0.0.1", 0),
                )
                leg.transport = transport
            for count, leg in enumerate(new):
                signalling.invite(Dialog(leg))
                if count % 10 == 9:
                    await asyncio.sleep(10 / CALLS_PER_SECOND)
            legs.extend(new)
            deadline = loop.time() + SETUP_TIMEOUT_SECONDS
            while loop.time() < deadline and any(  # noqa: ASYNC110
                leg.setup_seconds is None for leg in new
            ):
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the new calls settle
            for leg in legs:
                leg.reset()
            firsts = {leg.index: leg.number for leg in legs}
            drops_before = await scrape_drops(http, node_urls)
            meter.start()
            await asyncio.sleep(args.hold)
            cpu = meter.percent()
            nodes_cpu = sum(cpu.get(f"node_{i}", 0.0) for i in range(len(pids)))
            live = [leg for leg in legs if leg.remote is not None]
            windows = [(leg.index, firsts[leg.index], leg.number) for leg in live]
            await asyncio.sleep(GRACE_SECONDS)
            drops = await scrape_drops(http, node_urls) - drops_before
            loss = window_loss(windows, {leg.index: leg.returned for leg in live})
            round_trips: array.array[float] = array.array("d")
            to_carrier: array.array[float] = array.array("d")
            for leg in live:
                round_trips.extend(leg.round_trips)
                to_carrier.extend(leg.latencies)
            setups = [leg.setup_seconds * 1000 for leg in new if leg.setup_seconds is not None]
            result = {
                "calls": step,
                "answered": len(live),
                "failed_calls": step - len(live),
                **loss,
                "round_trip_ms": p50_p99(round_trips),
                "agent_to_carrier_ms": p50_p99(to_carrier),  # from the agent's send stamp
                "setup_ms": p50_p99(setups),
                "nodes_cpu_percent": nodes_cpu,
                "cpu_percent_per_call": nodes_cpu / max(1, len(live)),
                "carrier_cpu_percent": cpu["carrier"],
                "agent_cpu_percent": cpu.get("agent"),
                "cpu_percent": cpu,  # of one core, per part, over the held window
                "machine_cpu_percent": meter.machine_percent(),  # of all cores
                "nodes_throttled": meter.throttled(),  # % of quota periods cut short
                "node_drops": dict(drops),  # caller packets the nodes dropped, and why
            }
            result["broken"] = breaks(result)
            results["steps"].append(result)
            await asyncio.to_thread(out.write_text, json.dumps(results))
            print(f"step {step} done", flush=True)
            if result["broken"]:
                break
    finally:
        sending = False
        await asyncio.gather(pump_task, return_exceptions=True)
        await http.close()
    await asyncio.to_thread(out.write_text, json.dumps(results))


def breaks(step: dict[str, Any]) -> list[str]:
    """Which objectives a held step missed (empty: it held)."""
    broken = []
    if step["failed_calls"]:
        broken.append(
            f"{step['failed_calls']} calls not answered within {SETUP_TIMEOUT_SECONDS:.0f} s"
        )
    if step["loss"] > MAX_LOSS:
        broken.append(f"loss {step['loss'] * 100:.2f} %")
    p99 = step["round_trip_ms"]["p99"]
    if p99 is not None and p99 > MAX_ROUND_TRIP_P99_MS:
        broken.append(f"round trip p99 {p99:.1f} ms")
    for generator in ("carrier", "agent"):
        percent = step.get(f"{generator}_cpu_percent")
        if percent is not None and percent > GENERATOR_SATURATED_PERCENT:
            broken.append(f"{generator} at {percent:.0f} % of a core (generator limit)")
    machine = step.get("machine_cpu_percent")
    if machine is not None and machine > MACHINE_SATURATED_PERCENT:
        broken.append(f"machine {machine:.0f} % busy (machine limit)")
    return broken


# -- orchestration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which cores each node runs on, and where everything else (the shared parts) runs.

    ``shared`` is None when Kamailio, PostgreSQL, the agent and the carrier are
    not pinned (they may run on every core, the nodes' included).
    ``node_cpu_percent`` is each node's CPU quota (% of one core), None for none.
    """

    name: str
    nodes: tuple[frozenset[int] | None, ...]
    shared: tuple[int, ...] | None
    summary: str
    node_cpu_percent: float | None = None

    def node_cores(self, nodes: int) -> list[set[int] | None]:
        """The cores of the first ``nodes`` nodes (a smaller cluster keeps the same cores)."""
        return [set(cores) if cores is not None else None for cores in self.nodes[:nodes]]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "node_cores": [sorted(cores) if cores is not None else None for cores in self.nodes],
            "shared_cores": list(self.shared) if self.shared is not None else None,
            "node_cpu_percent": self.node_cpu_percent,
            "summary": self.summary,
        }


def plan_layout(usable: list[int], nodes: int, node_cpu_percent: float | None = None) -> Layout:
    """Where the nodes and the shared parts run on a machine with the ``usable`` cores.

    Node i always gets the same core, so node A runs alike in the 1-node and the
    2-node cluster and the 2-node cluster adds one core's worth of node. With
    exactly a core per node and no core left, each node also gets a CPU quota
    (``node_cpu_percent``, default ``NODE_CPU_PERCENT_SHARED``; 0 for none): the
    nodes, not the full machine, are then the limit, and a second node adds one
    quota's worth of capacity.
    """
    cores = sorted(usable)
    if len(cores) > nodes:
        return Layout(
            "separate cores",
            tuple(frozenset({core}) for core in cores[:nodes]),
            tuple(cores[nodes:]),
            f"each node on a core of its own ({', '.join(map(str, cores[:nodes]))}); Kamailio,"
            f" PostgreSQL, the agent and the carrier on the other core(s) "
            f"({', '.join(map(str, cores[nodes:]))})",
        )
    if len(cores) == nodes:
        quota = NODE_CPU_PERCENT_SHARED if node_cpu_percent is None else node_cpu_percent
        budget = f", each limited to {quota:.0f} % of its core by a CPU quota" if quota else ""
        return Layout(
            "a core per node, shared",
            tuple(frozenset({core}) for core in cores),
            None,
            f"node i on core i ({', '.join(map(str, cores))}){budget}; Kamailio, PostgreSQL, the"
            " agent and the carrier not pinned, sharing every core with the nodes",
            quota or None,
        )
    return Layout(
        "shared", (None,) * nodes, None, "nothing pinned: the nodes and the rest share every core"
    )


def postmaster_pid(server_url: str) -> int:
    """The PostgreSQL server's main process when it runs on this machine (0 when it does not)."""
    import asyncpg

    async def parent_of_backend() -> int:
        connection = await asyncpg.connect(server_url)
        try:  # read while the backend lives: it exits with its connection
            backend = int(await connection.fetchval("SELECT pg_backend_pid()"))
            stat = await asyncio.to_thread(Path(f"/proc/{backend}/stat").read_text)
        except OSError:
            return 0  # another machine's
        finally:
            await connection.close()
        return int(stat.rsplit(")", 1)[1].split()[1])

    return asyncio.run(parent_of_backend())


async def fresh_database(server_url: str) -> str:
    import asyncpg

    name = f"bench_cluster_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(server_url: str, url: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    finally:
        await admin.close()


DATABASE_COUNTERS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted")


async def database_counters(server_url: str, url: str) -> dict[str, int]:
    """PostgreSQL's own counts for the cluster's database (transactions, rows written)."""
    import asyncpg

    admin = await asyncpg.connect(server_url)
    try:
        row = await admin.fetchrow(
            f"SELECT {', '.join(DATABASE_COUNTERS)} FROM pg_stat_database WHERE datname = $1",
            url.rsplit("/", 1)[1],
        )
    finally:
        await admin.close()
    return {name: int(row[name]) for name in DATABASE_COUNTERS} if row else {}


def measure(
    nodes: int, args: argparse.Namespace, server_url: str, kamailio: str, work: Path,
    layout: Layout,
) -> dict[str, Any]:  # fmt: skip
    """One cluster of ``nodes`` nodes: its set-up rate and its held-calls ramp."""
    from tests.cluster.harness import NODE_HOSTS, Kamailio, free_port, make_node

    work = Path(tempfile.mkdtemp(prefix=f"nodes{nodes}-", dir=work))
    load_before = os.getloadavg()[0]
    url = asyncio.run(fresh_database(server_url))
    agent_port = free_port("127.0.0.1", socket.SOCK_STREAM)
    agent = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.load", "agent", str(agent_port),
         str(work / "agent.bin"), "1"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    members = []
    quotas: list[CpuQuota] = []
    balancer: Kamailio | None = None
    carrier: subprocess.Popen[bytes] | None = None
    try:
        wait_until_listening(agent_port)
        asyncio.run(seed_database(url, f"ws://127.0.0.1:{agent_port}/agent"))
        secret_key = secrets.token_urlsafe(32)
        members = [
            make_node(
                f"node-{i}",
                NODE_HOSTS[i],
                work,
                url,
                secret_key,
                log_level="warning",
                shutdown_timeout_seconds="2",
                sip_trusted_sources="127.0.0.1/32",
            )  # fmt: skip
            for i in range(nodes)
        ]
        before = asyncio.run(database_counters(server_url, url))
        for index, (node, pin) in enumerate(zip(members, layout.node_cores(nodes), strict=True)):
            node.start(pin)
            if layout.node_cpu_percent and node.process is not None:
                quota = CpuQuota.create(f"node{index}", layout.node_cpu_percent)
                if quota is None:
                    raise RuntimeError("no writable CPU cgroup for the nodes' quota"
                                       " (run as root, or give --node-cpu-percent 0)")  # fmt: skip
                quota.add(node.process.pid)
                quotas.append(quota)
        for node in members:
            node.wait_ready()
        balancer = Kamailio(members, work)
        balancer.start(kamailio, children=4)
        time.sleep(2.5)  # the first probes answered
        out = work / "carrier.json"
        carrier = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.cluster", "carrier",
             "--kamailio-port", str(balancer.port), "--steps", args.steps, "--hold", str(args.hold),
             "--setup-calls", str(args.setup_calls), "--in-flight", str(args.in_flight),
             "--pids", ",".join(str(n.process.pid) for n in members if n.process),
             "--agent-pid", str(agent.pid),
             "--kamailio-pid", str(balancer.process.pid if balancer.process else 0),
             "--postgres-pid", str(postmaster_pid(server_url)),
             "--node-urls", ",".join(node.base_url for node in members),
             "--quotas", ",".join(str(quota.path) for quota in quotas),
             "--out", str(out)],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert carrier.stdout is not None
        for line in carrier.stdout:
            sys.stderr.write(f"  {nodes} node(s): {line.decode().strip()}\n")
        if carrier.wait(60) != 0:
            tails = "\n".join(n.log_tail(2000) for n in members) + balancer.log_tail(2000)
            raise RuntimeError(f"carrier failed with {nodes} node(s)\n{tails}")
        measured: dict[str, Any] = json.loads(out.read_text())
    finally:
        if carrier is not None:
            stop(carrier)
        if balancer is not None:
            balancer.stop()
        for node in members:
            node.stop()
        for quota in quotas:
            quota.remove()
        stop(agent)
        time.sleep(1.0)  # the nodes' sessions have reported their counts
        after = asyncio.run(database_counters(server_url, url))
        asyncio.run(drop_database(server_url, url))
    steps = measured["steps"]
    held = [s["calls"] for s in steps if not s["broken"]]
    capacity = 0
    for step in steps:
        if step["broken"]:
            break
        capacity = step["calls"]
    measured["capacity_calls"] = capacity
    measured["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    top = next((s for s in reversed(steps) if s["calls"] == capacity), steps[0] if steps else None)
    measured["cpu_at_capacity"] = cpu_parts(top["cpu_percent"]) if top else {}
    measured["machine_at_capacity"] = top.get("machine_cpu_percent") if top else None
    measured["cpu_during_setup"] = cpu_parts((measured["setup"] or {}).get("cpu_percent", {}))
    measured["limited_by"] = next((s["broken"] for s in steps if s["broken"]), ["not reached"])
    measured["setup_limited_by"] = setup_limit(measured["setup"])
    measured["steps_held"] = held
    calls = (measured["setup"] or {}).get("answered", 0) + max(
        (s["answered"] for s in steps), default=0
    )
    measured["database_per_call"] = {
        name: (after[name] - before[name]) / calls for name in DATABASE_COUNTERS if calls and after
    }
    measured["database_calls_counted"] = calls
    return measured


NODE_THROTTLED_PERCENT = 50.0  # a node's quota ran out in this share of periods: at its limit
NODE_SATURATED_PERCENT = 85.0  # a node without a quota, % of its one core


def setup_limit(setup: dict[str, Any] | None) -> str:
    """What held the set-up rate back: the whole machine, the nodes' CPU, or none of them
    (then a latency, not a CPU, set the pace)."""
    if not setup:
        return "not measured"
    machine = setup.get("machine_cpu_percent")
    if machine is not None and machine > MACHINE_SATURATED_PERCENT:
        return f"the machine ({machine:.0f} % busy)"
    throttled = setup.get("nodes_throttled") or {}
    if throttled and min(throttled.values()) > NODE_THROTTLED_PERCENT:
        return f"the nodes' CPU quota (ran out in {min(throttled.values()):.0f}+ % of periods)"
    nodes = [v for name, v in (setup.get("cpu_percent") or {}).items() if name.startswith("node_")]
    if nodes and min(nodes) > NODE_SATURATED_PERCENT:
        return f"the nodes' CPU ({min(nodes):.0f}+ % of a core each)"
    return "no part at its limit"


CPU_PARTS = ("nodes", "carrier", "agent", "kamailio", "postgres")


def cpu_parts(cpu: dict[str, float]) -> dict[str, float]:
    """Each part's CPU (% of one core), the nodes added up; parts not measured are left out."""
    parts = {"nodes": sum(value for name, value in cpu.items() if name.startswith("node_"))}
    parts.update({name: cpu[name] for name in CPU_PARTS[1:] if name in cpu})
    return parts


def median_parts(measured: list[dict[str, float]]) -> dict[str, float]:
    """The median over runs of each part's CPU."""
    names = [name for name in CPU_PARTS if any(name in parts for parts in measured)]
    return {
        name: statistics.median(parts[name] for parts in measured if name in parts)
        for name in names
    }


def ratio(two: float | None, one: float | None) -> float | None:
    return two / one if two is not None and one else None


def summarize(runs: list[dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Median over runs of each configuration's figures, and the scaling ratios run by run."""
    summary: dict[str, Any] = {}
    for nodes in CONFIGURATIONS:
        rates = [run[nodes]["setup"]["calls_per_second"] for run in runs if run[nodes]["setup"]]
        capacities = [run[nodes]["capacity_calls"] for run in runs]
        summary[f"{nodes}_nodes"] = {
            "calls_per_second": _spread(rates),
            "capacity_calls": _spread(capacities),
            "cpu_during_setup": median_parts(
                [run[nodes].get("cpu_during_setup", {}) for run in runs]
            ),
            "cpu_at_capacity": median_parts(
                [run[nodes].get("cpu_at_capacity", {}) for run in runs]
            ),
            "machine_during_setup": _median_of(
                [(run[nodes]["setup"] or {}).get("machine_cpu_percent") for run in runs]
            ),
            "machine_at_capacity": _median_of(
                [run[nodes].get("machine_at_capacity") for run in runs]
            ),
        }
    per_run_cps = [
        ratio(r[2]["setup"]["calls_per_second"], r[1]["setup"]["calls_per_second"])
        for r in runs
        if r[1]["setup"] and r[2]["setup"]
    ]
    per_run_capacity = [ratio(r[2]["capacity_calls"], r[1]["capacity_calls"]) for r in runs]
    summary["scaling"] = {
        "calls_per_second": _spread([v for v in per_run_cps if v is not None]),
        "capacity_calls": _spread([v for v in per_run_capacity if v is not None]),
        "target": TARGET_SCALING,
    }
    return summary


def _median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def print_summary(results: dict[str, Any]) -> None:
    rows = []
    for run_index, run in enumerate(results["runs"], 1):
        for nodes in CONFIGURATIONS:
            figures = run[str(nodes)]
            setup = figures["setup"] or {}
            rows.append([
                run_index, nodes, setup.get("calls_per_second", 0.0),
                f"{setup.get('answered', 0)}/{setup.get('calls', 0)}",
                _pair(setup.get("setup_ms") or {}), figures.get("setup_limited_by", "-"),
                figures["capacity_calls"], "; ".join(figures["limited_by"]),
            ])  # fmt: skip
    print_table(["run", "nodes", "set-up cps", "answered", "set-up p50/p99 ms",
                 "set-up limited by", "calls held", "held calls limited by"], rows)  # fmt: skip
    scaling = results["summary"]["scaling"]
    for figure in ("calls_per_second", "capacity_calls"):
        spread_ = scaling[figure]
        if spread_ is not None:
            print(f"scaling, {figure}: {spread_['median']:.2f}× "
                  f"({spread_['min']:.2f}–{spread_['max']:.2f}); target {TARGET_SCALING}×")  # fmt: skip
    for nodes in CONFIGURATIONS:
        writes = [run[str(nodes)].get("database_per_call") or {} for run in results["runs"]]
        if writes and all(writes):
            figures = ", ".join(
                f"{name} {statistics.median(w[name] for w in writes):.1f}"
                for name in DATABASE_COUNTERS
            )
            print(f"PostgreSQL per call, {nodes} node(s): {figures}")
    for nodes in CONFIGURATIONS:
        figures = results["summary"][f"{nodes}_nodes"]
        print(f"CPU, % of one core, {nodes} node(s): set-up {_parts(figures['cpu_during_setup'])};"
              f" at the capacity step {_parts(figures['cpu_at_capacity'])};"
              f" machine busy, % of all cores: set-up {_percent(figures['machine_during_setup'])},"
              f" at the capacity step {_percent(figures['machine_at_capacity'])}")  # fmt: skip
    print(f"layout: {results['layout']['summary']}")
    if results["layout"].get("node_cpu_percent"):
        print(f"note: each node ran under a CPU quota of {results['layout']['node_cpu_percent']:.0f}"
              " % of a core; its figures are per quota, not per core")  # fmt: skip
    if results["nodes_share_a_core"]:
        print("note: the nodes shared every core here; the ratio measures overhead, not scale-out")
    elif results["generators_share_node_cores"]:
        print("note: the generators, Kamailio and PostgreSQL shared the nodes' cores; "
              "the ratio understates scale-out")  # fmt: skip


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _parts(parts: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f}" for name, value in parts.items()) or "-"


def _pair(pair: dict[str, Any]) -> str:
    if pair.get("p50") is None:
        return "-"
    return f"{pair['p50']:.1f} / {pair['p99']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role")
    carrier = sub.add_parser("carrier")
    carrier.add_argument("--kamailio-port", type=int, required=True)
    carrier.add_argument("--steps", required=True)
    carrier.add_argument("--hold", type=float, required=True)
    carrier.add_argument("--setup-calls", type=int, required=True)
    carrier.add_argument("--in-flight", type=int, required=True)
    carrier.add_argument("--pids", required=True)
    carrier.add_argument("--agent-pid", type=int, default=0)
    carrier.add_argument("--kamailio-pid", type=int, default=0)
    carrier.add_argument("--postgres-pid", type=int, default=0)
    carrier.add_argument("--node-urls", default="", help="the nodes' HTTP base URLs (/metrics)")
    carrier.add_argument("--quotas", default="", help="the nodes' CPU quota groups, in order")
    carrier.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=3, help="runs of both clusters (median)")
    parser.add_argument("--setup-calls", type=int, default=600, help="calls of the set-up test")
    parser.add_argument("--in-flight", type=int, default=40, help="INVITEs outstanding at most")
    parser.add_argument(
        "--steps",
        default="10,20,40,60,80,100,120,140,160,180,200,240,280,320,360,400",
        help="held calls, a ramp",
    )
    parser.add_argument("--hold", type=float, default=5.0, help="seconds each step is held")
    parser.add_argument("--database-url", default="", help="PostgreSQL server (else a throwaway)")
    parser.add_argument(
        "--node-cpu-percent",
        type=float,
        default=None,
        help=f"each node's CPU quota, %% of a core, when the nodes have no core to spare"
        f" (default {NODE_CPU_PERCENT_SHARED:.0f}; 0: none)",
    )
    parser.add_argument(
        "--allow-uncommitted",
        action="store_true",
        help="measure code that differs from its commit (results are marked)",
    )
    args = parser.parse_args()
    if args.role == "carrier":
        import uvloop

        uvloop.run(run_carrier(args))
        return
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    require_committed(args.allow_uncommitted)
    from tests.cluster.harness import kamailio_binary

    kamailio = kamailio_binary()
    if kamailio is None:
        sys.exit("kamailio is not installed (Debian package kamailio)")
    layout = plan_layout(
        sorted(os.sched_getaffinity(0)), max(CONFIGURATIONS), args.node_cpu_percent
    )
    if layout.shared is not None:  # what this process starts runs there too (PostgreSQL too)
        os.sched_setaffinity(0, set(layout.shared))
    server_url = args.database_url
    if not server_url:
        from tests import postgres_server

        found = postgres_server.postgres_url()
        if found is None:
            sys.exit(f"no PostgreSQL: {postgres_server.unavailable_reason()} (or --database-url)")
        server_url = found
    runs: list[dict[int, dict[str, Any]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="trunkline-cluster-") as tmp:
            for run_index in range(args.runs):
                order = CONFIGURATIONS if run_index % 2 == 0 else tuple(reversed(CONFIGURATIONS))
                run: dict[int, dict[str, Any]] = {}
                for nodes in order:
                    sys.stderr.write(f"run {run_index + 1}/{args.runs}: {nodes} node(s)\n")
                    run[nodes] = measure(nodes, args, server_url, kamailio, Path(tmp), layout)
                runs.append(run)
    finally:
        if not args.database_url:
            from tests import postgres_server

            postgres_server.stop_cluster()
    loads = [
        value for run in runs for figures in run.values()
        for value in figures["load_average"].values()
    ]  # fmt: skip
    results = {
        "runs_count": args.runs,
        "load_average": {"min": min(loads), "max": max(loads)},
        "settings": {
            "setup_calls": args.setup_calls,
            "in_flight": args.in_flight,
            "steps": args.steps,
            "hold_seconds": args.hold,
        },  # fmt: skip
        "objectives": {
            "max_loss": MAX_LOSS,
            "max_round_trip_p99_ms": MAX_ROUND_TRIP_P99_MS,
            "jitter_max_ms": JITTER_MAX_MS,
            "max_machine_busy_percent": MACHINE_SATURATED_PERCENT,
            "failed_calls": 0,
        },  # fmt: skip
        "setup_hangs_up_on_answer": True,
        "layout": layout.describe(),
        "node_cores": layout.describe()["node_cores"],
        "nodes_share_a_core": layout.nodes[0] is None,
        "generators_share_node_cores": layout.shared is None,
        "summary": summarize(runs),
        "runs": [{str(k): v for k, v in run.items()} for run in runs],
    }
    print_summary(results)
    write_results("cluster", results)


if __name__ == "__main__":
    main()
