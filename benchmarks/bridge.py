"""The media bridge under load: CPU per call, loss, latency and pacing, against a bare floor.

    python -m benchmarks.bridge [--calls 100] [--seconds 10] [--formats mulaw8k,pcm16_16k]
                                [--runs 3] [--baseline GIT-REF]

For each agent format, three processes besides this one: a real ``trunkline
serve``, an echo agent (a WebSocket server echoing every media frame), and a
carrier that places ``--calls`` SIP calls into trunkline and streams 20 ms
μ-law RTP frames on each. In the same run a *floor* replaces trunkline with a
bare relay — the same UDP sockets and agent WebSocket connections, forwarding
each packet at once with no RTP session, playout, clock or call logic — so
trunkline's CPU per call is reported as a ratio to the floor's.

Measured over the streaming window (after every call is answered):
- CPU per call: process CPU seconds ÷ wall seconds ÷ calls (from /proc).
- frames lost, by frame number (``benchmarks._frames``): of the frames each
  leg sent in the window, those that never came back within 0.3 s after it,
  split into carrier → agent (never reached the agent) and agent → carrier
  (echoed, never returned). PCM formats transcode the numbers away: their
  loss is counted with quiet window edges (the carrier stops sending for
  0.3 s before the window, so nothing sent earlier is still in flight) and
  split by direction by the frames that reached the agent in the window.
- latency carrier→agent: agent receipt time − carrier send time (both clocks
  are the machine's CLOCK_MONOTONIC); agent→carrier: carrier receipt − agent
  send. Stamps ride inside the μ-law payload, so latency is measured for
  μ-law agents only (PCM formats transcode the stamp away). trunkline's
  agent→carrier figure includes waiting for the shared 20 ms tick (on
  average half a tick); the floor forwards at once.
- pacing jitter: |inter-arrival − 20 ms| of the RTP trunkline sends.
Each figure is the median of ``--runs`` runs (default 3), with its min–max;
the runs of trunkline and the floor alternate so machine noise falls on both.
The floor relay for a PCM format transcodes like trunkline (μ-law 8 kHz ⇄
PCM16 at the agent's rate, per frame), so the ratio compares like with like.
On a machine with two or more cores, trunkline (or the floor relay) runs on
one core of its own and the agent and carrier on the others
(``benchmarks._cores``). Code that differs from its commit is not measured
unless ``--allow-uncommitted`` is given (the result file then says so).
Each round runs trunkline twice, with its C extension and with its pure-Python
twin (``TRUNKLINE_NO_SPEEDUPS=1``), and each run's process must say in its
start-up log that it runs the path it is labelled with (``benchmarks._media_path``).
``--baseline REF`` adds another kind of run in the same rounds: trunkline as
committed at REF (extracted with ``git archive``, its C extension built from its own
sources: ``benchmarks._baseline``), so a change is judged against the code before it
on the same machine at the same time.
Results go to ``benchmarks/results/bridge.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _media_path as media_path
from benchmarks._baseline import extract
from benchmarks._cores import CoreSplit, split_cores
from benchmarks._echo_agent import serve_echo
from benchmarks._frames import LedgerBook, arrivals_between, counted_loss, window_loss
from benchmarks._report import (
    median,
    percentile,
    print_table,
    require_committed,
    write_results,
)
from benchmarks._rtp_fleet import PHASES, RtpFleet
from benchmarks._seed import NUMBER, seed_database
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message
from trunkline.gateway.sip.sdp import parse_sdp

FRAME = 0.020
TARGET_CPU_PERCENT_PER_CALL = 0.25
STAMP = struct.Struct("!q")  # monotonic nanoseconds in the first 8 payload bytes
RTP_HEADER = struct.Struct("!BBHII")
SILENCE = b"\xff" * 160  # what trunkline sends while the agent is quiet
GRACE_SECONDS = 0.3  # after a window: frames still in flight may come back


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p99": None}
    return {"p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99)}


# -- the echo agent (its own process) ----------------------------------------------------


async def run_agent(port: int, out: Path, stamp: bool) -> None:
    """Echo every media frame (``benchmarks._echo_agent``); time and number the tagged ones."""
    stats = await serve_echo(port, stamp)
    latencies = stats.samples[1::2]
    report = json.dumps({"frames": stats.frames, "latency_ms": summary(list(latencies)),
                         "arrivals": list(stats.arrivals)})  # fmt: skip
    await asyncio.to_thread(out.write_text, report)
    await asyncio.to_thread(stats.book.write, ledger_path(out))


def ledger_path(out: Path | str) -> Path:
    """Where a process writing ``out`` keeps its frame-number ledgers."""
    return Path(str(out) + ".ledgers")


# -- the floor: the same sockets, no gateway logic (its own process) --------------------


async def run_floor(
    calls: int, agent_url: str, ports_out: Path, agent_audio: str = "mulaw8k", shared: bool = False
) -> None:
    """Relay each packet at once; for a PCM agent, transcode per frame as trunkline does.

    Each call has a UDP socket of its own, or with ``shared`` every call's RTP goes through one
    socket as on trunkline's shared port (read up to 64 datagrams per wake-up with
    ``recvmmsg``, a loop iteration's packets written with one ``sendmmsg``), each datagram
    going to the call its SSRC was first seen with. ``ports_out`` gets every call's port.
    """
    from trunkline.agent.formats import AGENT_FORMATS, AgentToCaller, CallerToAgent
    from trunkline.agent.link import connect_agent

    agent_format = AGENT_FORMATS[agent_audio]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    header = struct.Struct("!BBHII")

    class Relay(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.send: Any = None  # (packet, peer): the call's socket, or the shared port
            self.peer: Any = None
            self.link: Any = None
            self.sequence = 0
            self.to_agent = CallerToAgent(agent_format, codec="PCMU")
            self.to_caller = AgentToCaller(agent_format)

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.peer = addr
            if self.link is not None and not stop.is_set():
                audio = self.to_agent.convert(memoryview(data)[12:])
                payload = base64.b64encode(audio).decode()
                self.link.send_text(f'{{"event":"media","media":{{"payload":"{payload}"}}}}')

        def from_agent(self, text: str) -> None:
            if self.peer is None:
                return
            audio = base64.b64decode(json.loads(text)["media"]["payload"])
            payload = self.to_caller.convert(audio)
            if not payload:
                return
            self.sequence = (self.sequence + 1) & 0xFFFF
            packet = header.pack(0x80, 0, self.sequence, 0, 1) + payload
            self.send(packet, self.peer)

    relays: list[Relay] = []
    ports: list[int] = []
    shared_port = SharedFloorPort(relays) if shared else None
    for _ in range(calls):
        relay = Relay()
        if shared_port is not None:
            relay.send = shared_port.send
            ports.append(shared_port.port)
        else:
            transport, _ = await loop.create_datagram_endpoint(
                lambda relay=relay: relay,  # type: ignore[misc]
                local_addr=("127.0.0.1", 0),
            )
            relay.send = transport.sendto
            ports.append(transport.get_extra_info("sockname")[1])
        relay.link = await connect_agent(
            agent_url,
            {},
            relay.from_agent,
            # The agent went away (it is stopped first): relay nothing more to it.
            lambda code, reason, relay=relay: setattr(relay, "link", None),  # type: ignore[misc]
            allow_private=True,
        )
        relays.append(relay)
    partial = ports_out.with_name(ports_out.name + ".partial")  # the reader never sees half
    await asyncio.to_thread(partial.write_text, json.dumps(ports))
    partial.replace(ports_out)
    await stop.wait()
    for relay in relays:
        if relay.link is not None:
            relay.link.close(1000, "done")
    if shared_port is not None:
        shared_port.close()


class SharedFloorPort:
    """The floor's one UDP socket for every call (``run_floor(shared=True)``)."""

    def __init__(self, relays: list[Any]) -> None:
        from trunkline.speedups import recv_batch, send_batch

        self._recv_batch, self._send_batch = recv_batch, send_batch
        self.relays = relays  # the calls, in the order their SSRCs are first seen
        self.by_ssrc: dict[bytes, Any] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.queued: list[tuple[bytes, bytes]] = []
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.sock.fileno(), self.readable)

    def readable(self) -> None:
        by_ssrc = self.by_ssrc
        for data, key in self._recv_batch(self.sock, 64):
            ssrc = data[8:12]
            relay = by_ssrc.get(ssrc)
            if relay is None:
                if len(by_ssrc) >= len(self.relays) or len(ssrc) < 4:
                    continue  # more SSRCs than calls: not the carrier's
                relay = by_ssrc[ssrc] = self.relays[len(by_ssrc)]
            relay.datagram_received(data, key)

    def send(self, packet: bytes, key: bytes) -> None:
        if not self.queued:
            self.loop.call_soon(self.flush)
        self.queued.append((packet, key))

    def flush(self) -> None:
        queued, self.queued = self.queued, []
        with contextlib.suppress(OSError):  # what the kernel refuses is counted as lost
            self._send_batch(self.sock, queued)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


# -- the carrier (its own process) --------------------------------------------------------


async def sip_calls(fleet: RtpFleet, calls: int, sip_port: int) -> asyncio.DatagramTransport:
    """INVITE every call (ACKing each 200) and point each leg at trunkline's RTP port.

    Every call offers the fleet's one RTP port; what trunkline sends back is told
    apart by the port it answered with.
    """
    loop = asyncio.get_running_loop()
    pending: dict[str, int] = {}
    answered = asyncio.Event()

    class Signalling(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            message = parse_message(data)
            if isinstance(message, SipResponse) and message.status == 200:
                leg = pending.pop(message.call_id, None)
                if leg is not None and message.cseq[1] == "INVITE":
                    answer = parse_sdp(message.body)
                    fleet.connect(leg, answer.address, answer.port)
                    ack = request("ACK", message.call_id, 1, to=message.headers.get("To"))
                    transport.sendto(ack.serialize(), ("127.0.0.1", sip_port))
                    if not pending:
                        answered.set()

    transport, _ = await loop.create_datagram_endpoint(Signalling, local_addr=("127.0.0.1", 0))
    own_port = transport.get_extra_info("sockname")[1]

    def request(method: str, call_id: str, cseq: int, to: str | None = None) -> SipRequest:
        message = SipRequest(method=method, uri=f"sip:{NUMBER}@127.0.0.1:{sip_port}")
        message.headers.add(
            "Via", f"SIP/2.0/UDP 127.0.0.1:{own_port};branch=z9hG4bK{secrets.token_hex(6)}"
        )
        message.headers.add("From", f"<sip:+14155550100@127.0.0.1>;tag={call_id[:8]}")
        message.headers.add("To", to or f"<sip:{NUMBER}@127.0.0.1>")
        message.headers.add("Call-ID", call_id)
        message.headers.add("CSeq", f"{cseq} {method}")
        message.headers.add("Max-Forwards", "70")
        message.headers.add("Contact", f"<sip:carrier@127.0.0.1:{own_port}>")
        return message

    for leg in range(calls):
        call_id = f"bench-{leg}-{secrets.token_hex(4)}"
        pending[call_id] = leg
        invite = request("INVITE", call_id, 1)
        invite.headers.add("Content-Type", "application/sdp")
        invite.body = (
            "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {fleet.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ).encode()
        transport.sendto(invite.serialize(), ("127.0.0.1", sip_port))
        if leg % 10 == 9:
            await asyncio.sleep(0.05)  # a ramp, not a burst
    await asyncio.wait_for(answered.wait(), 60)
    return transport


async def run_carrier(args: argparse.Namespace) -> None:
    """Every call's RTP on one socket (``benchmarks._rtp_fleet``): numbered, stamped frames
    out each 20 ms tick; what comes back numbered and timed over the measuring window."""
    loop = asyncio.get_running_loop()
    fleet = RtpFleet(args.calls, b"\x55" * 160, bool(args.numbered), phases=args.phases)
    fleet.recording = False
    fleet.start_reading(loop)
    if args.floor_ports:
        ports = json.loads(await asyncio.to_thread(Path(args.floor_ports).read_text))
        for leg, port in enumerate(ports[: args.calls]):
            fleet.connect(leg, "127.0.0.1", port)
    else:
        await sip_calls(fleet, args.calls, args.sip_port)
    next_tick = loop.time()
    stop_at = loop.time() + 1.0 + args.seconds
    # Untagged (PCM) frames cannot be told apart, so the window's start is made quiet:
    # nothing is sent for 0.3 s before it, and nothing sent earlier is still in flight.
    quiet_from = stop_at - args.seconds - (0.0 if args.numbered else GRACE_SECONDS)
    started_cpu = started_wall = window_start = 0.0
    firsts = fleet.frames.number.copy()
    while loop.time() < stop_at:
        if not fleet.recording and loop.time() >= stop_at - args.seconds:
            fleet.reset()
            fleet.recording = True
            firsts = fleet.frames.number.copy()
            started_cpu, started_wall = cpu_seconds(args.pid), time.monotonic()
            window_start = time.monotonic()
        fleet.tick(send=fleet.recording or loop.time() < quiet_from)
        next_tick += fleet.slot_seconds
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
    cpu, wall = cpu_seconds(args.pid) - started_cpu, time.monotonic() - started_wall
    window_end = time.monotonic()
    await asyncio.sleep(GRACE_SECONDS)  # what is in flight comes back
    fleet.recording = False
    latencies = fleet.returned.latency_samples().tolist()
    jitter = fleet.returned.jitter_samples().tolist()
    numbers = fleet.frames.number
    windows = [(leg, int(firsts[leg]), int(numbers[leg])) for leg in range(args.calls)]
    book = LedgerBook()
    book.ledgers = {leg: fleet.returned.ledger(leg) for leg in range(args.calls)}
    if args.numbered:
        loss = window_loss(windows, book.ledgers)
    else:
        loss = counted_loss(fleet.sent, fleet.returned.received)
    await asyncio.to_thread(book.write, ledger_path(args.out))
    await asyncio.to_thread(
        Path(args.out).write_text,
        json.dumps(
            {
                "cpu_percent_per_call": 100 * cpu / wall / args.calls,
                **loss,
                "loss_method": "frame numbers" if args.numbered else "count, quiet edges",
                "windows": windows,
                "window_monotonic": [window_start, window_end],
                "latency_to_carrier_ms": summary(latencies),
                "pacing_jitter_ms": summary(jitter),
                "carrier_unsent": fleet.unsent,
                "carrier_socket_drops": fleet.kernel_drops(),
            }
        ),
    )
    fleet.close(loop)


# -- orchestration ------------------------------------------------------------------------


def python(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "benchmarks.bridge", *args], **kwargs)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def prepare_database(path: Path, agent_url: str, agent_audio: str, **options: Any) -> None:
    """A SQLite database with one auto-accept number for the agent (``options``: its settings)."""
    await seed_database(f"sqlite:///{path}", agent_url, agent_audio, **options)


def wait_until_listening(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def measure(
    kind: str,
    agent_audio: str,
    args: argparse.Namespace,
    work: Path,
    source: Path | None = None,
    cores: CoreSplit | None = None,
) -> dict[str, Any]:
    """One run of ``kind``: trunkline with the C extension ("trunkline"), its pure-Python
    twin ("pure_python"), trunkline as of ``source`` ("baseline") or the bare relay ("floor")."""
    work = Path(tempfile.mkdtemp(prefix=f"{kind}-{agent_audio}-", dir=work))
    agent_port = free_port(socket.SOCK_STREAM)
    agent_out = work / f"{kind}-{agent_audio}-agent.json"
    carrier_out = work / f"{kind}-{agent_audio}-carrier.json"
    stamp = "1" if agent_audio == "mulaw8k" else "0"
    implementation = "C extension (floor relay)" if kind == "floor" else "as committed"
    agent = python("agent", str(agent_port), str(agent_out), stamp)
    agent_url = f"ws://127.0.0.1:{agent_port}/agent"
    wait_until_listening(agent_port)
    processes = [agent]
    log: Any = None
    try:
        carrier_args = ["carrier", "--phases", str(args.phases),
                        "--calls", str(args.calls), "--seconds", str(args.seconds),
                        "--numbered", stamp]  # fmt: skip
        pin = cores.pin_system() if cores is not None else None
        if kind != "floor":
            data = work / f"data-{agent_audio}"
            data.mkdir()
            asyncio.run(prepare_database(data / "trunkline.db", agent_url, agent_audio))
            http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
            env = dict(os.environ, TRUNKLINE_DATA_DIR=str(data), TRUNKLINE_HOST="127.0.0.1",
                       TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_SIP_HOST="127.0.0.1",
                       TRUNKLINE_SIP_PORT=str(sip_port), TRUNKLINE_MEDIA_ADDRESS="127.0.0.1",
                       TRUNKLINE_ALLOW_INSECURE_URLS="1", TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
                       TRUNKLINE_LOG_LEVEL="warning", TRUNKLINE_TRANSCRIPTION="off")  # fmt: skip
            if kind in media_path.KINDS:  # C or pure Python, confirmed from its start-up log
                env = media_path.environment(kind, env)
            if source is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
            log_path = work / f"trunkline-{agent_audio}.log"
            log = log_path.open("wb")
            server = subprocess.Popen(
                [sys.executable, "-m", "trunkline", "serve"], env=env, stderr=log, cwd=source,
                preexec_fn=pin,
            )  # fmt: skip
            processes.append(server)
            wait_until_listening(http_port)
            if kind in media_path.KINDS:
                implementation = media_path.confirm(log_path, kind)
            measured_pid = server.pid
            carrier_args += ["--sip-port", str(sip_port), "--pid", str(measured_pid)]
        else:
            ports_file = work / f"floor-{agent_audio}-ports.json"
            floor = python("floor", str(args.calls), agent_url, str(ports_file),
                           "--agent-audio", agent_audio, preexec_fn=pin)  # fmt: skip
            processes.append(floor)
            deadline = time.monotonic() + 30
            while not ports_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            carrier_args += ["--floor-ports", str(ports_file), "--pid", str(floor.pid)]
        carrier = python(*carrier_args, "--out", str(carrier_out))
        processes.append(carrier)
        if carrier.wait(args.seconds + 120) != 0:
            logs = "".join(p.read_text(errors="replace")[-3000:] for p in work.glob("*.log"))
            raise RuntimeError(f"carrier failed for {kind} {agent_audio}\n{logs}")
    finally:
        for process in reversed(processes):
            stop(process)
        if log is not None:
            log.close()
    result: dict[str, Any] = json.loads(carrier_out.read_text())
    agent_result = json.loads(agent_out.read_text()) if agent_out.exists() else {}
    result["latency_to_agent_ms"] = agent_result.get("latency_ms")
    result["media_path"] = implementation
    windows = [tuple(window) for window in result.pop("windows")]
    if agent_audio == "mulaw8k":  # numbered frames: loss per direction
        returned = LedgerBook.read(ledger_path(carrier_out)).ledgers
        at_agent = LedgerBook.read(ledger_path(agent_out)).ledgers
        result.update(window_loss(windows, returned, at_agent))
    else:  # quiet edges: what reached the agent from the window's start to its grace's end
        start, end = result["window_monotonic"]
        reached = arrivals_between(sorted(agent_result.get("arrivals", [])), start,
                                   end + GRACE_SECONDS)  # fmt: skip
        sent, lost = result["frames_sent"], result["frames_lost"]
        result.update(counted_loss(sent, sent - lost, reached))
    if agent_audio != "mulaw8k":
        result["latency_to_carrier_ms"] = {"p50": None, "p99": None}
    return result


def role_parsers(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The helper processes' sub-commands (agent, floor, carrier); returns the carrier's."""
    sub = parser.add_subparsers(dest="role")
    agent = sub.add_parser("agent")
    agent.add_argument("port", type=int)
    agent.add_argument("out", type=Path)
    agent.add_argument("stamp", type=int)
    floor = sub.add_parser("floor")
    floor.add_argument("calls", type=int)
    floor.add_argument("agent_url")
    floor.add_argument("ports_out", type=Path)
    floor.add_argument("--agent-audio", default="mulaw8k")
    floor.add_argument("--shared", action="store_true", help="every call's RTP on one socket")
    carrier = sub.add_parser("carrier")
    carrier.add_argument("--sip-port", type=int, default=0)
    carrier.add_argument("--floor-ports", default="")
    carrier.add_argument("--pid", type=int, required=True)
    carrier.add_argument("--out", required=True)
    carrier.add_argument("--numbered", type=int, default=1, help="frames carry their numbers")
    carrier.add_argument("--phases", type=int, default=PHASES)
    return carrier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    carrier = role_parsers(parser)
    carrier.add_argument("--calls", type=int, required=True)
    carrier.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--formats", default="mulaw8k,pcm16_16k")
    parser.add_argument("--runs", type=int, default=3, help="rounds per format (median reported)")
    parser.add_argument(
        "--phases",
        type=int,
        default=PHASES,
        help="slots of the 20 ms period the calls' RTP clocks are spread over (1: one burst)",
    )
    parser.add_argument("--baseline", default="", help="also run trunkline as of this git ref")
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
    require_committed(args.allow_uncommitted)
    cores = split_cores(1)
    formats = [f for f in args.formats.split(",") if f]
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="trunkline-bridge-") as tmp:
        work = Path(tmp)
        kinds: dict[str, Path | None] = {"trunkline": None, "pure_python": None, "floor": None}
        if args.baseline:
            kinds["baseline"] = extract(args.baseline, work / "baseline-source")
        for agent_audio in formats:
            print(f"[{agent_audio}] {args.calls} calls for {args.seconds:.0f} s × {args.runs} …")
            runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
            for _ in range(args.runs):  # kinds alternate, so noise falls on each alike
                for kind, source in kinds.items():
                    runs[kind].append(measure(kind, agent_audio, args, work, source, cores))
            result = {kind: spread(kind_runs) for kind, kind_runs in runs.items()}
            result["cpu_ratio_to_floor"] = cpu_ratio(runs["trunkline"], runs["floor"])
            result["pure_python_cpu_ratio_to_floor"] = cpu_ratio(runs["pure_python"], runs["floor"])
            result["cpu_ratio_to_pure_python"] = cpu_ratio(runs["trunkline"], runs["pure_python"])
            if args.baseline:
                result["cpu_ratio_to_baseline"] = cpu_ratio(runs["trunkline"], runs["baseline"])
            results[agent_audio] = result
            for kind in kinds:
                run = result[kind]
                rows.append([
                    agent_audio, kind, _fmt_spread(run["cpu_percent_per_call"]),
                    _fmt_loss(run), _fmt(run["latency_to_agent_ms"]),
                    _fmt(run["latency_to_carrier_ms"]), _fmt(run["pacing_jitter_ms"]),
                ])  # fmt: skip
    print()
    print_table(
        ["format", "run", "CPU %/call median (min–max)", "lost/sent (→a, →c)", "→agent p50/p99 ms",
         "→carrier p50/p99 ms", "jitter p50/p99 ms"],
        rows,
    )  # fmt: skip
    for agent_audio, result in results.items():
        for key, ours, theirs in (("cpu_ratio_to_floor", "trunkline (C)", "floor"),
                                  ("pure_python_cpu_ratio_to_floor", "pure Python", "floor"),
                                  ("cpu_ratio_to_pure_python", "trunkline (C)", "pure Python"),
                                  ("cpu_ratio_to_baseline", "trunkline (C)", "baseline")):  # fmt: skip
            ratio = result.get(key)
            if ratio is not None:
                print(
                    f"{agent_audio}: {ours} CPU per call = {ratio['median']:.2f}× the {theirs}"
                    f" (per round {ratio['min']:.2f}–{ratio['max']:.2f})"
                )
    write_results(
        "bridge",
        {
            "calls": args.calls,
            "seconds": args.seconds,
            "runs": args.runs,
            "carrier_phases": args.phases,
            "baseline": args.baseline or None,
            "target_cpu_percent_per_call": TARGET_CPU_PERCENT_PER_CALL,
            "cores": cores.describe() if cores is not None else None,
            "formats": results,
        },
    )


def spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One kind's runs: CPU per call as median and min–max, the rest from the median run."""
    cpu = sorted(run["cpu_percent_per_call"] for run in runs)
    middle = sorted(runs, key=lambda run: run["cpu_percent_per_call"])[len(runs) // 2]
    sent = sum(run["frames_sent"] for run in runs)
    lost = sum(run["frames_lost"] for run in runs)
    losses = sorted(run["loss"] for run in runs)
    return {
        **middle,
        "cpu_percent_per_call": {"median": median(cpu), "min": cpu[0], "max": cpu[-1]},
        "frames_lost": lost,
        "frames_sent": sent,
        "loss": lost / sent if sent else 0.0,
        "loss_per_run": {"median": median(losses), "min": losses[0], "max": losses[-1]},
        "to_agent": _summed([run["to_agent"] for run in runs]),
        "to_carrier": _summed([run["to_carrier"] for run in runs]),
    }


def _summed(directions: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One direction's loss over all runs (None when it was not measured)."""
    if any(d is None for d in directions):
        return None
    sent = sum(d["sent"] for d in directions if d is not None)
    lost = sum(d["lost"] for d in directions if d is not None)
    return {"sent": sent, "lost": lost, "loss": lost / sent if sent else 0.0}


def cpu_ratio(ours: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, float]:
    """CPU per call of ``ours`` over ``reference``, round by round: median and min–max."""
    ratios = sorted(
        a["cpu_percent_per_call"] / max(b["cpu_percent_per_call"], 1e-9)
        for a, b in zip(ours, reference, strict=True)
    )
    return {"median": median(ratios), "min": ratios[0], "max": ratios[-1]}


def _fmt_spread(value: dict[str, float]) -> str:
    return f"{value['median']:.3f} ({value['min']:.3f}–{value['max']:.3f})"


def _fmt_loss(run: dict[str, Any]) -> str:
    total = f"{run['frames_lost']}/{run['frames_sent']}"
    if run["to_agent"] is None:
        return total
    return f"{total} ({run['to_agent']['lost']}, {run['to_carrier']['lost']})"


def _fmt(pair: dict[str, float | None] | None) -> str:
    if not pair or pair.get("p50") is None:
        return "-"
    return f"{pair['p50']:.2f} / {pair['p99']:.2f}"


if __name__ == "__main__":
    main()
