"""CPU instructions per 20 ms frame pair on the media path, counted by callgrind.

    python -m benchmarks.frame_cost [--frames 2000] [--runs 3]
                                    [--profiles mulaw,recording,binary] [--baseline REF]

Timings on a shared machine wander with its load; instruction counts do not.
This runs one call's real media objects — ``RtpEndpoint`` → ``RtpSession`` →
``MediaSession`` → Inkbox persona → ``AgentLink`` (websockets' protocol owns
the handshake), and back: the agent's ``media`` frame → ``AgentLink`` →
persona → ``Playout`` → the 20 ms tick → ``RtpLeg`` → ``RtpEndpoint`` — on
fake transports (no sockets, no event-loop turns), under
``valgrind --tool=callgrind``. One *frame pair* is one caller RTP packet in
and its media frame out to the agent, plus one agent media frame in and its
RTP packet out to the caller.

Only the pairs are counted. Start-up and imports cost some 1.9 billion
instructions and vary by about 1 % from one process to the next — more than a
change to the media path moves the count — so callgrind counts nothing until
the workload's first pair (``--zero-before`` a marker call), dumps its count
after the first tenth of the pairs (the warm-up: caches, the interpreter's
specialisation) and again after the last (``--dump-before`` a second marker);
the count per pair is the second dump's total over the other nine tenths.
The call's clock is the workload's own, 20 ms per pair (the RTP arrival times
and the media clock's time), so the jitter buffer takes the same path on any
machine at any speed. Each figure is counted ``--runs`` times (3 by default)
in fresh processes; the median is published with the min–max.

``binary`` is ``mulaw`` with binary media frames both ways: the agent's 101
accepts ``X-Trunkline-Media-Frames: binary``, so caller audio goes out as raw
binary frames (no base64, no JSON), and the agent answers with binary frames
of raw μ-law. The workload checks that every frame to the agent was binary; a
tree without binary media frames (an older baseline) is not counted for it.

Each profile is measured with the C extension, with its pure-Python twin
(``TRUNKLINE_NO_SPEEDUPS=1``), and, with ``--baseline REF``, as committed at
REF (extracted with ``git archive``, its C extension built from its own
sources). Results go to ``benchmarks/results/frame_cost.json``; code that
differs from its commit is not measured unless ``--allow-uncommitted`` is given.

``python benchmarks/frame_cost.py --workload --frames N`` runs the workload
alone (what callgrind runs), against whichever ``trunkline`` is on the path.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PROFILES = ("mulaw", "recording", "binary")
CALLER = ("127.0.0.1", 40000)
AGENT_AUDIO = bytes(range(0x30, 0x30 + 160))
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
UNSUPPORTED = 3  # the workload's exit status: the tree measured has no such profile
BINARY_OFFER = "X-Trunkline-Media-Frames"


# -- the workload (run under callgrind, importing whichever trunkline is on the path) --------


class NullTransport:
    """A connected stream or datagram transport that takes every write and keeps nothing."""

    def __init__(self) -> None:
        self.written: list[bytes] = []  # kept only until the agent handshake is answered
        self.keep = True
        self.bytes_out = 0

    def write(self, data: bytes) -> None:
        self.bytes_out += len(data)
        if self.keep:
            self.written.append(bytes(data))

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.bytes_out += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40002) if name == "sockname" else default

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        return None

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None


class NullTimer:
    def cancel(self) -> None:
        return None


class SteppedTime:
    """The call's time in the workload: it moves 20 ms per frame pair, when told.

    Both the caller's RTP session (the packets' arrival times) and the media clock
    (a ``TimerLoop`` whose timer never fires: the workload calls the ticks itself)
    read it, so what the jitter buffer does depends on the inputs, not on how fast
    the machine (or callgrind) runs the loop.
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> NullTimer:
        return NullTimer()


# Callgrind's region markers: it zeroes its count before the first and dumps it before each
# call of the second (``--zero-before`` / ``--dump-before``). Neither is called anywhere else
# in the workload's process while it runs.
ZERO_MARKER = "getppid"
DUMP_MARKER = "getpgrp"


class QuietEvents:
    """A call that never ends during the workload."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def server_frame(data: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked frame (text by default), as an agent (a WebSocket server) sends it."""
    size = len(data)
    if size < 126:
        return bytes((0x80 | opcode, size)) + data
    return struct.pack("!BBH", 0x80 | opcode, 126, size) + data


def handshake_answer(request: bytes, extra_headers: str = "") -> bytes:
    key = re.search(rb"Sec-WebSocket-Key: (\S+)", request)
    assert key is not None, request
    accept = base64.b64encode(hashlib.sha1(key.group(1) + WS_GUID.encode()).digest()).decode()
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n{extra_headers}\r\n"
    ).encode()


def rtp_datagrams(count: int) -> list[bytes]:
    pattern = bytes(range(128)) * 3
    return [
        struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, (n * 160) & 0xFFFFFFFF, 0x1234)
        + pattern[n % 128 : n % 128 + 160]
        for n in range(count)
    ]


async def workload(frames: int, prepared: int, profile: str) -> dict[str, int]:
    from trunkline.agent.link import AgentLink
    from trunkline.gateway.rtp.leg import RtpLeg
    from trunkline.gateway.rtp.transport import RtpEndpoint
    from trunkline.media.clock import MediaClock
    from trunkline.media.factory import MediaSessionFactory
    from trunkline.media.plan import MediaPlan
    from trunkline.media.recording import RecordingWriter

    binary = profile == "binary"
    if binary:
        from trunkline.agent import inkbox_protocol

        if not hasattr(inkbox_protocol, "binary_media_accepted"):
            sys.exit(UNSUPPORTED)
    with tempfile.TemporaryDirectory() as recordings:
        writer = RecordingWriter(Path(recordings)) if profile == "recording" else None
        time_ = SteppedTime()
        factory = MediaSessionFactory(MediaClock(time_), recordings=writer)
        plan = MediaPlan("frame-cost", caller_codec="PCMU", record=profile == "recording")
        session = factory.create(plan, QuietEvents())  # type: ignore[arg-type]
        offer = {BINARY_OFFER: "binary"} if binary else {}  # as the dialer offers it
        link = AgentLink("ws://127.0.0.1:1/agent", offer, session.agent_text, lambda c, r: None)
        agent_socket = NullTransport()
        link.connection_made(agent_socket)  # type: ignore[arg-type]
        accepted = f"{BINARY_OFFER}: binary\r\n" if binary else ""
        link.data_received(handshake_answer(b"".join(agent_socket.written), accepted))
        await link.wait_open()
        agent_socket.keep = False
        endpoint = RtpEndpoint()
        endpoint.connection_made(NullTransport())  # type: ignore[arg-type]
        leg = RtpLeg(endpoint, session, payload_type=0, event_payload_type=101, remote=CALLER)
        leg.session._clock = time_  # arrival times
        session.caller = leg
        session.attach_agent(link)
        session.start()
        opened_bytes = agent_socket.bytes_out  # the handshake and ``start``
        datagrams = rtp_datagrams(prepared)  # the same inputs whatever ``frames`` is
        if binary:
            agent_frame = server_frame(AGENT_AUDIO, opcode=0x2)
        else:
            agent_frame = server_frame(
                json.dumps(
                    {"event": "media", "media": {"payload": base64.b64encode(AGENT_AUDIO).decode()}}
                ).encode()
            )
        receive, data_received, tick = endpoint.datagram_received, link.data_received, session._tick
        pull = session._pull_caller  # the jitter buffer's slot (the default configuration)
        warm_up = frames // 10
        os.getppid()  # ZERO_MARKER: callgrind counts from here
        for n in range(frames):
            if n == warm_up:
                os.getpgrp()  # DUMP_MARKER: the warm-up's count, not published
            time_.now += 0.020
            receive(datagrams[n], CALLER)  # caller → jitter buffer
            pull()  # jitter buffer → agent (its own 20 ms clock subscription, called directly)
            data_received(agent_frame)  # agent → playout
            tick()  # playout → caller (the clock's 20 ms tick, called directly)
        os.getpgrp()  # DUMP_MARKER: the count of the other nine tenths
        jitter = leg.jitter
        held = round(jitter.depth_frames) if jitter is not None else 0
        counters = {
            # what the buffer still holds at the end counts as carried, not lost
            "frames_to_agent": session.frames_to_agent + held,
            "frames_to_caller": session.frames_to_caller,
            "agent_frames_rejected": session.agent_frames_rejected,
            "held_by_jitter_buffer": held,
            "bytes_to_agent": agent_socket.bytes_out - opened_bytes,
        }
        session.stop("done")
        return counters


def workload_error(counters: dict[str, int], frames: int, profile: str) -> str | None:
    """What went wrong in a workload run of ``frames`` pairs, or None: every frame was
    carried both ways (binary frames to the agent for ``binary``)."""
    if counters["frames_to_agent"] != frames or counters["frames_to_caller"] != frames:
        return f"the workload lost frames: {counters} for {frames} pairs"
    if counters["agent_frames_rejected"]:
        return f"agent frames were rejected: {counters}"
    # A client's binary frame of 160 bytes of μ-law: 4 header bytes (a 16-bit length: 160 is
    # over 125), a 4-byte mask key, the audio.
    binary_bytes = (frames - counters["held_by_jitter_buffer"]) * (4 + 4 + 160)
    if profile == "binary" and counters["bytes_to_agent"] != binary_bytes:
        return f"caller audio did not go to the agent as binary frames: {counters}"
    return None


def run_workload(frames: int, prepared: int, profile: str) -> None:
    counters = asyncio.run(workload(frames, prepared, profile))
    error = workload_error(counters, frames, profile)
    if error is not None:
        sys.exit(error)
    print(json.dumps(counters))


# -- the driver ---------------------------------------------------------------------------


def instructions(
    frames: int, prepared: int, profile: str, tree: Path, env: dict[str, str], work: Path
) -> float | None:
    """Instructions per frame pair in one workload process of ``frames`` pairs, past its
    warm-up (None: the tree has no such profile)."""
    out = work / f"callgrind.{profile}.{frames}.{os.getpid()}.out"
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        f"--zero-before={ZERO_MARKER}", f"--dump-before={DUMP_MARKER}",
        sys.executable, str(Path(__file__).resolve()), "--workload",
        "--frames", str(frames), "--prepared", str(prepared), "--profile", profile,
    ]  # fmt: skip
    child_env = {**env, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    try:
        done = subprocess.run(command, env=child_env, capture_output=True, text=True, cwd=work)
        if done.returncode == UNSUPPORTED:
            return None
        if done.returncode != 0:
            sys.exit(
                f"workload failed ({' '.join(command)}):\n{done.stdout}\n{done.stderr[-3000:]}"
            )
        # Dump 1 is the warm-up's, dump 2 the measured pairs', the file without a suffix the exit's.
        measured = Path(f"{out}.2")
        if not measured.exists():
            sys.exit(
                f"callgrind wrote no dump of the measured pairs ({measured}):\n{done.stderr[-2000:]}"
            )
        total = re.search(r"^totals: (\d+)$", measured.read_text(), re.MULTILINE)
        if total is None:
            sys.exit(f"no instruction total in {measured}")
        return int(total.group(1)) / (frames - frames // 10)
    finally:
        for dump in work.glob(f"{out.name}*"):
            dump.unlink()


def per_pair(
    profile: str, frames: int, runs: int, tree: Path, env: dict[str, str], work: Path
) -> dict[str, float] | None:
    """The median, min and max over ``runs`` processes (None: the tree has no such profile)."""
    counts = []
    for _ in range(runs):
        count = instructions(frames, frames, profile, tree, env, work)
        if count is None:
            return None
        counts.append(count)
    return {"median": statistics.median(counts), "min": min(counts), "max": max(counts)}


def compile_tree(tree: Path) -> None:
    """Byte-compile ``tree`` first: otherwise the first run alone pays for compiling it."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "trunkline")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="processes per figure (median)")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--baseline", help="also count trunkline as committed at this git ref")
    parser.add_argument("--allow-uncommitted", action="store_true")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepared", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="mulaw", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        run_workload(args.frames, max(args.prepared, args.frames), args.profile)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks._baseline import extract
    from benchmarks._report import print_table, require_committed, write_results

    require_committed(args.allow_uncommitted)
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "TRUNKLINE_NO_SPEEDUPS"}
    kinds: list[tuple[str, Path, dict[str, str]]] = [
        ("C extension", root, env),
        ("pure Python", root, {**env, "TRUNKLINE_NO_SPEEDUPS": "1"}),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.baseline:
            tree = extract(args.baseline, work / "baseline")
            kinds.append((f"baseline {args.baseline}", tree, env))
        for _, tree, _ in kinds:
            compile_tree(tree)
        rows, results = [], []
        for profile in args.profiles.split(","):
            figures = {
                kind: per_pair(profile, args.frames, args.runs, tree, kenv, work)
                for kind, tree, kenv in kinds
            }
            c, fallback = figures["C extension"], figures["pure Python"]
            assert c is not None and fallback is not None  # this tree has every profile
            for kind, value in figures.items():
                if value is None:
                    rows.append([profile, kind, "–", "–", "–"])  # an older tree: no such profile
                else:
                    spread = f"{value['min']:.0f}–{value['max']:.0f}"
                    rows.append(
                        [
                            profile,
                            kind,
                            round(value["median"]),
                            spread,
                            value["median"] / c["median"],
                        ]
                    )
            results.append(
                {
                    "profile": profile,
                    "instructions_per_frame_pair": {
                        kind: value["median"] if value else None for kind, value in figures.items()
                    },
                    "spread": figures,
                    "c_saves_over_pure_python": 1 - c["median"] / fallback["median"],
                }
            )
    print_table(["profile", "media path", "instructions / frame pair", "min–max", "× C"], rows)
    write_results(
        "frame_cost",
        {
            "frames": args.frames,
            "runs": args.runs,
            "method": (
                "callgrind Ir of the pairs after the first tenth (zeroed and dumped at marker"
                " calls), ÷ their number; the workload's clock moves 20 ms per pair;"
                " median of --runs processes"
            ),
            "profiles": results,
        },
    )


if __name__ == "__main__":
    main()
