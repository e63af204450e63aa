"""How worker processes on one machine pass call actions to the process that owns the call.

Each worker of ``serve --workers N`` listens on ``<data dir>/run/<pid>.sock``;
a call's ``owner`` is ``"<host>:<pid>"``. An API hang-up that lands on another
worker sends one line, ``hangup <call id>``, and gets ``ok`` or ``gone`` back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("trunkline.owner_channel")
ASK_SECONDS = 3.0
MAX_LINE = 256


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def same_host(owner: str) -> bool:
    return owner.rpartition(":")[0] == socket.gethostname()


class OwnerChannel:
    def __init__(self, directory: Path, on_hangup: Callable[[str], Awaitable[bool]]) -> None:
        self.directory = directory
        self.path = directory / f"{os.getpid()}.sock"
        self._on_hangup = on_hangup
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), ASK_SECONDS)
            verb, _, call_id = line[:MAX_LINE].decode(errors="replace").strip().partition(" ")
            ok = verb == "hangup" and bool(call_id) and await self._on_hangup(call_id)
            writer.write(b"ok\n" if ok else b"gone\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def ask_owner(directory: Path, owner: str, call_id: str) -> bool:
    """Ask the worker that owns a call to hang it up; False when it is not reachable here."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    path = directory / f"{pid}.sock"
    try:
        async with asyncio.timeout(ASK_SECONDS):
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(f"hangup {call_id}\n".encode())
            await writer.drain()
            answer = await reader.readline()
            writer.close()
    except (OSError, TimeoutError) as exc:
        log.info("owner %s not reachable: %s", owner, exc, extra={"call_id": call_id})
        return False
    return answer.strip() == b"ok"
