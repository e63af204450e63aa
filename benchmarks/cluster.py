"""Scale-out: one node against two behind Kamailio, in the same run.

    python -m benchmarks.cluster [--runs 3] [--setup-calls 300] [--in-flight 40]
                                 [--steps 100,200,300,400,600,800] [--hold 8]
                                 [--allow-uncommitted]

Each run measures two clusters in turn, 1 node then 2 nodes (rounds alternate
which goes first, so machine noise falls on both): real ``trunkline serve``
nodes on 127.0.0.2 and 127.0.0.3 (a fresh PostgreSQL database shared by the
nodes, default settings: calls recorded), Kamailio with the shipped
``deploy/kamailio/kamailio.cfg`` on 127.0.0.1 in front, an echo agent process
(``benchmarks.load``'s) and a carrier process that sends everything through
Kamailio (ACK and BYE follow the Record-Route set). Two figures per cluster:

- **call set-up rate**: ``--setup-calls`` calls placed with at most
  ``--in-flight`` INVITEs outstanding; each is acknowledged and hung up (BYE)
  as soon as it is answered. Calls per second = answered calls ÷ the time from
  the first INVITE to the last answer; p50/p99 of INVITE → 200 OK.
- **concurrent calls held**: a ramp like ``benchmarks.load``'s, each step held
  ``--hold`` seconds with every call sending numbered, time-stamped μ-law
  frames (``benchmarks._frames``) that the agent echoes. A step holds when
  every call was answered, no more than 0.1 % of the window's frames failed to
  come back, and the round trip (carrier → node → agent → node → carrier) p99
  is at most 60 ms. Capacity is the last step held.

Scaling efficiency is the 2-node figure ÷ the 1-node figure (target ≥ 1.8),
from the median of ``--runs`` runs (default 3). The nodes are pinned to cores
of their own where the machine has them (``benchmarks._cores``: node i on
system core i); Kamailio, PostgreSQL, the agent and the carrier share the
other cores. With fewer than three cores the two nodes share one core and
the result says so: the ratio then measures overhead, not scale-out. The
carrier's own CPU is recorded per step; a carrier at a full core is a
generator limit, flagged as such, not trunkline's.

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
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._cores import CoreSplit, split_cores
from benchmarks._frames import CARRIER_STAMP, window_loss
from benchmarks._report import percentile, print_table, require_committed, write_results
from benchmarks._seed import NUMBER, seed_database
from benchmarks.bridge import GRACE_SECONDS, SILENCE, stop, wait_until_listening
from benchmarks.load import Leg, tree_cpu_seconds, tree_pids
from trunkline.codecs.g711 import pcm16_to_ulaw
from trunkline.gateway.sip.header_values import Address
from trunkline.gateway.sip.message import SipRequest, parse_message, response_to

MAX_LOSS = 0.001
MAX_ROUND_TRIP_P99_MS = 60.0
SETUP_TIMEOUT_SECONDS = 10.0
CALLS_PER_SECOND = 100  # INVITE rate while a step's calls are placed
TARGET_SCALING = 1.8
GENERATOR_SATURATED_PERCENT = 90.0  # the carrier's CPU, % of one core
CONFIGURATIONS = (1, 2)  # nodes


# -- the carrier (its own process): SIP through Kamailio, RTP straight to the nodes --------


class Dialog:
    """One call as the carrier (UAC) keeps it: enough to ACK and BYE through the route set."""

    __slots__ = ("call_id", "tag", "invited_at", "answered_at", "to", "target", "routes",
                 "leg", "failed", "ended")  # fmt: skip

    def __init__(self, leg: Leg | None) -> None:
        self.call_id = f"cluster-{secrets.token_hex(8)}"
        self.tag = secrets.token_hex(4)
        self.invited_at = 0.0
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


def p50_p99(samples: list[float] | array.array[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p99": None}
    ordered = sorted(samples)
    return {"p50": percentile(ordered, 0.5), "p99": percentile(ordered, 0.99)}


async def setup_rate(signalling: ProxiedSignalling, calls: int, in_flight: int) -> dict[str, Any]:
    """Place ``calls`` calls, at most ``in_flight`` unanswered at once; hang each up at once."""
    dialogs = [Dialog(None) for _ in range(calls)]
    loop = asyncio.get_running_loop()
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
    for dialog in answered:
        signalling.bye(dialog)
    last = max((d.answered_at for d in answered if d.answered_at is not None), default=started)
    elapsed = max(1e-6, last - started)
    deadline = loop.time() + 5.0
    while loop.time() < deadline and not all(d.ended for d in answered):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    setups = [(d.answered_at - d.invited_at) * 1000 for d in answered if d.answered_at]
    return {
        "calls": calls,
        "in_flight": in_flight,
        "answered": len(answered),
        "failed_calls": calls - len(answered),
        "hung_up": sum(1 for d in answered if d.ended),
        "seconds": elapsed,
        "calls_per_second": len(answered) / elapsed,
        "setup_ms": p50_p99(setups),
    }


async def run_carrier(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    proxy = ("127.0.0.1", args.kamailio_port)
    pids = [int(p) for p in args.pids.split(",")]
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
        results["setup"] = await setup_rate(signalling, args.setup_calls, args.in_flight)
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
            node_pids = [p for pid in pids for p in tree_pids(pid)]
            cpu0, own0, wall0 = tree_cpu_seconds(node_pids), own_cpu_seconds(), time.monotonic()
            await asyncio.sleep(args.hold)
            wall = time.monotonic() - wall0
            cpu, own = tree_cpu_seconds(node_pids) - cpu0, own_cpu_seconds() - own0
            live = [leg for leg in legs if leg.remote is not None]
            windows = [(leg.index, firsts[leg.index], leg.number) for leg in live]
            await asyncio.sleep(GRACE_SECONDS)
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
                "nodes_cpu_percent": 100 * cpu / wall,
                "cpu_percent_per_call": 100 * cpu / wall / max(1, len(live)),
                "carrier_cpu_percent": 100 * own / wall,
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
    if step["carrier_cpu_percent"] > GENERATOR_SATURATED_PERCENT:
        broken.append(f"carrier at {step['carrier_cpu_percent']:.0f} % of a core (generator limit)")
    return broken


# -- orchestration -------------------------------------------------------------------------


def node_cores(cores: CoreSplit | None, nodes: int) -> list[set[int] | None]:
    """Node i on system core i (wrapping when there are fewer system cores than nodes)."""
    if cores is None:
        return [None] * nodes
    return [{cores.system[i % len(cores.system)]} for i in range(nodes)]


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
    cores: CoreSplit | None,
) -> dict[str, Any]:  # fmt: skip
    """One cluster of ``nodes`` nodes: its set-up rate and its held-calls ramp."""
    from tests.cluster.harness import NODE_HOSTS, Kamailio, free_port, make_node

    work = Path(tempfile.mkdtemp(prefix=f"nodes{nodes}-", dir=work))
    url = asyncio.run(fresh_database(server_url))
    agent_port = free_port("127.0.0.1", socket.SOCK_STREAM)
    agent = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.load", "agent", str(agent_port),
         str(work / "agent.bin"), "1"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    members = []
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
        for node, pin in zip(members, node_cores(cores, nodes), strict=True):
            node.start(pin)
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
    measured["limited_by"] = next((s["broken"] for s in steps if s["broken"]), ["not reached"])
    measured["steps_held"] = held
    calls = (measured["setup"] or {}).get("answered", 0) + max(
        (s["answered"] for s in steps), default=0
    )
    measured["database_per_call"] = {
        name: (after[name] - before[name]) / calls for name in DATABASE_COUNTERS if calls and after
    }
    measured["database_calls_counted"] = calls
    return measured


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
                _pair(setup.get("setup_ms") or {}), figures["capacity_calls"],
                "; ".join(figures["limited_by"]),
            ])  # fmt: skip
    print_table(["run", "nodes", "set-up cps", "answered", "set-up p50/p99 ms",
                 "calls held", "limited by"], rows)  # fmt: skip
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
    if results["nodes_share_a_core"]:
        print(
            "note: the two nodes shared one core here; the ratio measures overhead, not scale-out"
        )


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
    carrier.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=3, help="runs of both clusters (median)")
    parser.add_argument("--setup-calls", type=int, default=300, help="calls of the set-up test")
    parser.add_argument("--in-flight", type=int, default=40, help="INVITEs outstanding at most")
    parser.add_argument("--steps", default="100,200,300,400,600,800", help="held calls, a ramp")
    parser.add_argument("--hold", type=float, default=8.0, help="seconds each step is held")
    parser.add_argument("--database-url", default="", help="PostgreSQL server (else a throwaway)")
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
    cores = split_cores(max(CONFIGURATIONS))
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
                    run[nodes] = measure(nodes, args, server_url, kamailio, Path(tmp), cores)
                runs.append(run)
    finally:
        if not args.database_url:
            from tests import postgres_server

            postgres_server.stop_cluster()
    system = list(cores.system) if cores is not None else []
    results = {
        "runs_count": args.runs,
        "settings": {
            "setup_calls": args.setup_calls,
            "in_flight": args.in_flight,
            "steps": args.steps,
            "hold_seconds": args.hold,
        },  # fmt: skip
        "objectives": {
            "max_loss": MAX_LOSS,
            "max_round_trip_p99_ms": MAX_ROUND_TRIP_P99_MS,
            "failed_calls": 0,
        },  # fmt: skip
        "cores": cores.describe() if cores is not None else None,
        "node_cores": [sorted(c) if c else None for c in node_cores(cores, max(CONFIGURATIONS))],
        "nodes_share_a_core": len(system) < max(CONFIGURATIONS),
        "summary": summarize(runs),
        "runs": [{str(k): v for k, v in run.items()} for run in runs],
    }
    print_summary(results)
    write_results("cluster", results)


if __name__ == "__main__":
    main()
