"""The example agents of examples/, run the way their READMEs say: one command, a real process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MAX_OUTPUT_LINES = 2000


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningAgent:
    url: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)

    async def wait_for_line(self, text: str, seconds: float = 10.0) -> str:
        """The first output line containing ``text``; AssertionError with the output if none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            for line in self.output:
                if text in line:
                    return line
            await asyncio.sleep(0.05)
        raise AssertionError(f"agent never printed {text!r}:\n" + "\n".join(self.output))


async def _collect(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert process.stdout is not None
    async for raw in process.stdout:
        if len(lines) < MAX_OUTPUT_LINES:
            lines.append(raw.decode(errors="replace").rstrip())


@contextlib.asynccontextmanager
async def example_agent(name: str, *options: str) -> AsyncIterator[RunningAgent]:
    """``python examples/NAME/agent.py --port P [OPTIONS]`` on a free port, stopped (process
    group) after."""
    port = free_tcp_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name / "agent.py"),
        "--port",
        str(port),
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    agent = RunningAgent(f"ws://127.0.0.1:{port}", process)
    reader = asyncio.create_task(_collect(process, agent.output))
    try:
        await agent.wait_for_line("listening on", 20)
        yield agent
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await asyncio.wait_for(reader, 5)
