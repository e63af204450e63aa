"""The README's "First call in five minutes", followed on a fresh clone of the repository.

The ``first-call`` blocks of README.md run in order, each with ``bash`` in the
clone: ``serve`` and ``agent`` blocks keep running (like a terminal left open),
the ``call`` block runs to completion. What the test changes, and why:

- ``make`` would create ``.venv`` and ``pip install -e .`` into it, which needs
  the network and minutes. The test stands in for that step: ``.venv/bin/python``
  and ``.venv/bin/trunkline`` are wrappers around the interpreter running the
  tests, with the clone first on ``PYTHONPATH``, and ``.venv/.runtime`` (make's
  "installed" stamp) is touched, so make goes straight to the commands.
- Ports: trunkline's come from ``TRUNKLINE_HTTP_PORT``/``TRUNKLINE_SIP_PORT``
  (and an RTP range) set to free ones (``make demo`` listens on loopback); the
  agent's port ``9000`` in the commands, and make's ``AGENT_PORT``, become a
  free port.

Everything else — ``make demo`` (quickstart, then ``serve --dev``), the example
agent, ``trunkline call`` and the recording it writes — runs as written.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```sh first-call (serve|agent|call)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
README_AGENT_PORT = "9000"


@dataclass(frozen=True)
class Step:
    role: str  # serve | agent | call
    script: str


def readme_steps(readme: str) -> list[Step]:
    section = readme.split("## First call in five minutes", 1)[1].split("\n## ", 1)[0]
    return [Step(role, body.strip()) for role, body in BLOCK.findall(section)]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_clone(into: Path) -> Path:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    clone = into / "trunkline"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", head], check=True)
    return clone


def stand_in_for_the_venv(clone: Path) -> None:
    """What ``make``'s venv step would provide, without installing anything."""
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    wrappers = {
        "python": f'exec "{sys.executable}" "$@"',
        "trunkline": f'exec "{sys.executable}" -m trunkline "$@"',
    }
    for name, command in wrappers.items():
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{clone}" {command}\n')
        wrapper.chmod(0o755)
    stamp = clone / ".venv" / ".runtime"
    stamp.touch()
    later = (clone / "pyproject.toml").stat().st_mtime + 1
    os.utime(stamp, (later, later))


@contextmanager
def started(
    script: str, cwd: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A terminal left running: the script in its own process group, stopped afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "-c", f"set -e\n{script}"],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        for stop, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, stop)
                process.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def wait_until(
    ready: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes],
    log: Path,
    seconds: float,
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited {process.returncode}:\n{log.read_text()}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready after {seconds} s:\n{log.read_text()}")


def answers_http(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
        return bool(response.status == 200)


def accepts_tcp(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def seconds_with_sound(path: Path) -> float:
    with wave.open(str(path)) as recording:
        samples = np.frombuffer(recording.readframes(recording.getnframes()), "<i2")
    frames = samples[: samples.size // 160 * 160].reshape(-1, 160).astype(np.float64)
    loud = np.sqrt((frames**2).mean(axis=1)) > 300  # well above silence and line noise
    return float(loud.sum()) * 0.02


def test_the_readme_takes_a_fresh_clone_to_an_answered_call_with_the_agent_heard(
    tmp_path: Path,
) -> None:
    require(shutil.which("git") is not None and shutil.which("make") is not None, "git and make")
    require((ROOT / ".git").exists(), "a git checkout of trunkline")
    steps = readme_steps((ROOT / "README.md").read_text())
    assert [step.role for step in steps] == ["serve", "agent", "call"], steps
    clone = fresh_clone(tmp_path)
    stand_in_for_the_venv(clone)
    http_port, sip_port, agent_port = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    rtp_low = 20000 + (free_port(socket.SOCK_DGRAM) % 400) * 20
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "AGENT_PORT": str(agent_port),
        "TRUNKLINE_HTTP_PORT": str(http_port),
        "TRUNKLINE_SIP_PORT": str(sip_port),
        "TRUNKLINE_RTP_PORT_MIN": str(rtp_low),
        "TRUNKLINE_RTP_PORT_MAX": str(rtp_low + 19),
    }
    scripts = [step.script.replace(README_AGENT_PORT, str(agent_port)) for step in steps]
    serve_log, agent_log = tmp_path / "serve.log", tmp_path / "agent.log"
    with started(scripts[0], clone, env, serve_log) as trunkline:
        wait_until(lambda: answers_http(http_port), "make demo", trunkline, serve_log, 60)
        with started(scripts[1], clone, env, agent_log) as agent:
            wait_until(lambda: accepts_tcp(agent_port), "the agent", agent, agent_log, 20)
            call = subprocess.run(
                ["bash", "-c", f"set -e\n{scripts[2]}"],
                cwd=clone,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
    output = call.stdout + call.stderr
    assert call.returncode == 0, output + serve_log.read_text()
    served = serve_log.read_text()
    assert "phone number   +15550100000 -> ws://127.0.0.1:" in served
    assert "DEVELOPMENT MODE" in served
    lines = output.splitlines()
    assert lines[0] == "answered: yes", output
    assert "hung up by: caller" in output
    recording = clone / "out.wav"
    assert recording.is_file(), output
    assert seconds_with_sound(recording) >= 1.0, output  # the greeting, spoken
    assert "call connected" in agent_log.read_text()
