"""A trunkline cluster on loopback: PostgreSQL, N ``trunkline serve`` nodes, Kamailio in front.

Each node is a real ``trunkline serve`` process on a loopback address of its own
(127.0.0.2, 127.0.0.3, …): its SIP, HTTP and RTP sockets bind there, its SDP
names it, and its data directory (so its node id) is its own. All nodes share
one PostgreSQL database and one ``TRUNKLINE_SECRET_KEY``. Kamailio listens on
127.0.0.1 with the shipped ``deploy/kamailio/kamailio.cfg`` and a dispatcher
list naming the nodes; it is the only SIP source the nodes trust. Every process
runs in a session of its own and is stopped by process group.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trunkline.data_dir import load_node_id

REPO = Path(__file__).resolve().parents[2]
KAMAILIO_CFG = REPO / "deploy" / "kamailio" / "kamailio.cfg"
KAMAILIO_HOST = "127.0.0.1"
PING_INTERVAL_SECONDS = 1  # dispatcher OPTIONS probes: how fast a node leaves the set
NODE_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def free_port(host: str, kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def kamailio_binary() -> str | None:
    for candidate in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def pinned(cores: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps the new process (and its children) on ``cores``."""
    if cores is None:
        return None
    return lambda: os.sched_setaffinity(0, cores)


def stop_group(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 10
) -> int:
    """Signal the process's group, wait, and SIGKILL the group if it is still there."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what the group left behind
    return process.wait()


def wait_http(url: str, seconds: float = 30.0) -> int:
    """The status of ``url`` once it answers at all (an HTTP error status counts)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Node:
    """One trunkline node: its addresses, data directory and process."""

    name: str
    host: str
    sip_port: int
    http_port: int
    rtp_low: int
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def node_id(self) -> str:
        return load_node_id(self.data_dir)

    @property
    def owner(self) -> str:
        """The ``owner`` of the calls this node carries (one process: slot 0)."""
        return f"{self.node_id}:0"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def sip_uri(self) -> str:
        return f"sip:{self.host}:{self.sip_port}"

    def start(self, cores: set[int] | None = None) -> None:
        """Start ``trunkline serve``, on ``cores`` only when given."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "trunkline", "serve"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=pinned(cores),
            )  # fmt: skip

    def wait_ready(self, seconds: float = 60.0) -> None:
        status = wait_http(self.base_url + "/readyz", seconds)
        if status != 200:
            raise RuntimeError(f"{self.name} is not ready ({status}):\n{self.log_tail()}")

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def drain(self) -> None:
        """SIGTERM: the node stops taking calls and exits once its calls have ended."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crash: no drain, no BYE, nothing stored on the way out."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, signal.SIGTERM, wait=20)


def make_node(
    name: str, host: str, root: Path, database_url: str, secret_key: str, **settings: str
) -> Node:
    """A node's settings (not started): its own host, ports, data directory and node id."""
    data_dir = root / name
    data_dir.mkdir(parents=True)
    load_node_id(data_dir)  # known before it starts
    sip_port, http_port = free_port(host), free_port(host, socket.SOCK_STREAM)
    rtp_low = 20000 + secrets.randbelow(400) * 20  # below the ephemeral range
    env = dict(
        os.environ,
        TRUNKLINE_DATA_DIR=str(data_dir), TRUNKLINE_DATABASE_URL=database_url,
        TRUNKLINE_SECRET_KEY=secret_key, TRUNKLINE_HOST=host,
        TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_PUBLIC_URL=f"http://{host}:{http_port}",
        TRUNKLINE_SIP_HOST=host, TRUNKLINE_SIP_PORT=str(sip_port),
        TRUNKLINE_MEDIA_ADDRESS=host,
        TRUNKLINE_RTP_PORT_MIN=str(rtp_low), TRUNKLINE_RTP_PORT_MAX=str(rtp_low + 399),
        TRUNKLINE_SIP_TRUSTED_SOURCES=f"{KAMAILIO_HOST}/32",
        TRUNKLINE_ALLOW_INSECURE_URLS="1", TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
        TRUNKLINE_TRANSCRIPTION="off", TRUNKLINE_TEXT_TO_SPEECH="off",
        TRUNKLINE_CONSOLE="0", TRUNKLINE_LOG_LEVEL="info",
        TRUNKLINE_SHUTDOWN_TIMEOUT_SECONDS="60",
    )  # fmt: skip
    env.update({f"TRUNKLINE_{key.upper()}": value for key, value in settings.items()})
    return Node(name, host, sip_port, http_port, rtp_low, data_dir, env, root / f"{name}.log")


@dataclass
class Kamailio:
    """Kamailio with the shipped configuration, dispatching to ``nodes``."""

    nodes: list[Node]
    root: Path
    ping_interval: int = PING_INTERVAL_SECONDS
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "kamailio.log"

    @property
    def address(self) -> tuple[str, int]:
        return (KAMAILIO_HOST, self.port)

    def write_dispatcher_list(self) -> Path:
        path = self.root / "dispatcher.list"
        lines = [f"1 {node.sip_uri} 0 0 duid={node.name}" for node in self.nodes]
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, binary: str, children: int = 2, cores: set[int] | None = None) -> None:
        self.port = free_port(KAMAILIO_HOST)
        dispatcher_list = self.write_dispatcher_list()
        command = [
            binary, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-n", str(children),
            "-l", f"udp:{KAMAILIO_HOST}:{self.port}",
            "-A", f'DISPATCHER_LIST="{dispatcher_list}"',
            "-A", f"DS_PING_INTERVAL={self.ping_interval}",
            "-A", f'CTL_SOCKET="unix:{self.root / "kamailio.ctl"}"',
            "-P", str(self.root / "kamailio.pid"), "-Y", str(self.root),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=pinned(cores),
            )  # fmt: skip
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise RuntimeError(f"kamailio exited at start:\n{self.log_tail()}")

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, signal.SIGTERM, wait=10)


# -- numbered audio: which caller frames came back -----------------------------------------

FRAME_BYTES = 160


def numbered_frame(number: int) -> bytes:
    """A μ-law frame that says its number (two codes repeated; never digital silence)."""
    return bytes((0x20 + (number >> 6), 0x80 + (number & 0x3F))) * (FRAME_BYTES // 2)


def frame_numbers(recording: bytes | memoryview) -> set[int]:
    """The numbered frames found in what a caller received (arrival order, 160-byte frames)."""
    found: set[int] = set()
    data = bytes(recording)
    for start in range(0, len(data) - FRAME_BYTES + 1, FRAME_BYTES):
        frame = data[start : start + FRAME_BYTES]
        high, low = frame[0], frame[1]
        if 0x20 <= high < 0x30 and 0x80 <= low < 0xC0 and frame == frame[:2] * (FRAME_BYTES // 2):
            found.add(((high - 0x20) << 6) | (low - 0x80))
    return found
