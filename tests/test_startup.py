"""``trunkline serve`` starting up, run as the real command: the start-up block, speech
preloading reported by /readyz, and one-line errors (exit code 2) for what an operator can fix."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import free_port_run
from tests.test_daemon import free_port

STARTUP_SECONDS = 60.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUNKLINE_")}
    env.update(
        TRUNKLINE_HOST="127.0.0.1",
        TRUNKLINE_HTTP_PORT=str(free_port()),
        TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(free_udp_port()),
        TRUNKLINE_DATA_DIR=str(tmp_path / "data"),
        TRUNKLINE_TRANSCRIPTION="off",
        TRUNKLINE_TEXT_TO_SPEECH="off",
    )
    env.update(settings)
    return env


def serve_fails(env: dict[str, str]) -> str:
    """Run ``trunkline serve`` expecting it to refuse to start; its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "trunkline", "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=STARTUP_SECONDS,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def error_line(stderr: str) -> str:
    """The one ``trunkline: error:`` line (log lines before it may say what was tried)."""
    errors = [line for line in stderr.splitlines() if line.startswith("trunkline: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_http_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = environment(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["TRUNKLINE_HTTP_PORT"])))
        taken.listen()
        stderr = serve_fails(env)
    port = env["TRUNKLINE_HTTP_PORT"]
    expected = f"trunkline: error: HTTP port {port} is already in use (TRUNKLINE_HTTP_PORT)"
    assert error_line(stderr) == expected


def test_workers_that_cannot_start_make_serve_exit_2(tmp_path: Path) -> None:
    env = environment(tmp_path, TRUNKLINE_WORKERS="2")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["TRUNKLINE_HTTP_PORT"])))
        taken.listen()
        stderr = serve_fails(env)
    port = env["TRUNKLINE_HTTP_PORT"]
    errors = [line for line in stderr.splitlines() if line.startswith("trunkline: error:")]
    expected = f"trunkline: error: HTTP port {port} is already in use (TRUNKLINE_HTTP_PORT)"
    assert errors == [expected, expected]  # one line from each worker


def test_shared_rtp_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    port = free_port_run(2, 28400, 30400)
    env = environment(tmp_path, TRUNKLINE_RTP_SHARED_PORT=str(port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        stderr = serve_fails(env)
    expected = f"trunkline: error: RTP port {port} is already in use (TRUNKLINE_RTP_SHARED_PORT)"
    assert error_line(stderr) == expected


def test_sip_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = environment(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", int(env["TRUNKLINE_SIP_PORT"])))
        stderr = serve_fails(env)
    port = env["TRUNKLINE_SIP_PORT"]
    expected = f"trunkline: error: SIP port {port} is already in use (TRUNKLINE_SIP_PORT)"
    assert error_line(stderr) == expected


def test_sip_address_not_on_this_machine(tmp_path: Path) -> None:
    env = environment(tmp_path, TRUNKLINE_SIP_HOST="192.0.2.77")  # TEST-NET-1: never local
    assert error_line(serve_fails(env)) == (
        "trunkline: error: SIP address 192.0.2.77 is not one of this machine's (TRUNKLINE_SIP_HOST)"
    )


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    url = f"postgresql://trunkline:hunter2-secret@127.0.0.1:{closed}/trunkline"
    stderr = serve_fails(environment(tmp_path, TRUNKLINE_DATABASE_URL=url))
    line = error_line(stderr)
    assert line.startswith(
        f"trunkline: error: cannot reach PostgreSQL at postgresql://trunkline:***@127.0.0.1:{closed}"
    )
    assert "hunter2" not in stderr
    # The admin commands say the same, with the same exit code.
    result = subprocess.run(
        [sys.executable, "-m", "trunkline", "org", "list"],
        capture_output=True,
        text=True,
        env=environment(tmp_path, TRUNKLINE_DATABASE_URL=url),
        timeout=STARTUP_SECONDS,
    )
    assert result.returncode == 2 and error_line(result.stderr).startswith(line[:60])


def test_bad_secret_key_and_damaged_key_file(tmp_path: Path) -> None:
    stderr = serve_fails(environment(tmp_path, TRUNKLINE_SECRET_KEY="password"))
    assert error_line(stderr).startswith(
        "trunkline: error: TRUNKLINE_SECRET_KEY must be at least 32 printable ASCII characters"
    )
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "secret.key").write_text("not a key\n")
    os.chmod(data / "secret.key", 0o600)
    line = error_line(serve_fails(environment(tmp_path)))
    assert line.startswith(f"trunkline: error: {data / 'secret.key'} does not hold a key")


class Served:
    """A serving process whose stderr lines a thread collects as they come."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.log: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def read_until(self, text: str, deadline_s: float = STARTUP_SECONDS) -> None:
        """Collect stderr lines until one contains ``text``."""
        end = time.monotonic() + deadline_s
        while (left := end - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.log.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not logged:\n" + "\n".join(self.log))

    def readyz(self) -> tuple[int, dict[str, object]]:
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    env = environment(tmp_path, **getattr(request, "param", {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "trunkline", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield Served(process, int(env["TRUNKLINE_HTTP_PORT"]))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert process.stderr is not None


@pytest.mark.parametrize(
    "served",
    [{"TRUNKLINE_ALLOW_INSECURE_URLS": "1", "TRUNKLINE_SECRET_KEY": "s" * 40}],
    indirect=True,
)
def test_start_up_block_says_what_runs_where(served: Served, tmp_path: Path) -> None:
    served.read_until("insecure ")
    start = next(i for i, line in enumerate(served.log) if "serving" in line)
    block = served.log[start:]
    assert block[0].endswith("trunkline 0.1.0 serving") or " serving" in block[0]
    fields = {line.split()[0]: line.split(None, 1)[1] for line in block[1:]}
    assert list(fields) == [
        "versions", "HTTP", "SIP", "RTP", "data", "database", "speech", "insecure",
    ]  # fmt: skip
    assert fields["versions"].startswith(f"Python {sys.version.split()[0]}")
    assert "aiohttp" in fields["versions"] and "websockets" in fields["versions"]
    assert fields["HTTP"].startswith(f"127.0.0.1:{served.port};")
    assert fields["SIP"].startswith("udp 127.0.0.1:")
    assert fields["RTP"].startswith("ports 10000-20000 (5000 RTP/RTCP pairs")
    assert fields["data"] == str(tmp_path / "data")
    assert fields["database"] == f"sqlite:///{tmp_path / 'data' / 'trunkline.db'}"
    assert fields["speech"] == "off"
    assert fields["insecure"].startswith("TRUNKLINE_ALLOW_INSECURE_URLS")
    assert "s" * 40 not in "\n".join(served.log)  # the secret key is never logged


@pytest.mark.parametrize(
    "served",
    [{"TRUNKLINE_TRANSCRIPTION": "whisper", "TRUNKLINE_READY_WAITS_FOR_SPEECH": "1"}],
    indirect=True,
)
def test_whisper_loads_in_the_background_and_readyz_reports_it(served: Served) -> None:
    served.read_until("serving")
    end = time.monotonic() + STARTUP_SECONDS
    seen = []
    while True:
        status, body = served.readyz()
        speech = body["speech"]
        assert isinstance(speech, dict) and list(speech) == ["transcription:whisper"]
        seen.append(speech["transcription:whisper"])
        if speech["transcription:whisper"] == "loading":  # readiness waits, as configured
            assert (status, body["status"]) == (503, "speech loading")
        else:
            assert (status, body) == (200, {"status": "ready", "speech": speech})
            break
        assert time.monotonic() < end, seen
        time.sleep(0.1)
    assert seen[-1] == "ready"
    served.read_until("speech engine transcription:whisper ready in")
    assert any("loading speech engine transcription:whisper" in line for line in served.log)
