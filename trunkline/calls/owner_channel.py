"""How worker processes on one machine pass call actions to the process that owns the call.

A call's ``owner`` is ``"<node id>:<worker slot>"``: the data directory's node
id (``trunkline.data_dir.load_node_id``) and the worker's slot, 0..N-1 under
``serve --workers N`` and 0 otherwise. Both survive a restart, so the process
that takes a slot over finds the calls its predecessor left live. Each worker
listens on ``<data dir>/run/<slot>.sock``; an API hang-up that lands on another
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

from trunkline.data_dir import private_directory

log = logging.getLogger("trunkline.owner_channel")
ASK_SECONDS = 3.0
MAX_LINE = 256


_claimed: str | None = None  # this process's owner name, once the daemon has claimed it


def claim_owner(node_id: str, slot: int) -> str:
    """Name this process ``<node id>:<slot>`` on the calls it carries from now on."""
    global _claimed
    _claimed = f"{node_id}:{slot}"
    return _claimed


def owner_id() -> str:
    """This process's owner name; a process that has not claimed one is ``<host>:<pid>``."""
    return _claimed or f"{socket.gethostname()}:{os.getpid()}"


def same_node(owner: str) -> bool:
    """True when ``owner`` is a worker of this node (same data directory)."""
    return owner.rpartition(":")[0] == owner_id().rpartition(":")[0]


class OwnerChannel:
    def __init__(
        self, directory: Path, slot: int, on_hangup: Callable[[str], Awaitable[bool]]
    ) -> None:
        self.directory = directory
        self.path = directory / f"{slot}.sock"
        self._on_hangup = on_hangup
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        private_directory(self.directory)
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
    _, _, slot = owner.rpartition(":")
    if not same_node(owner) or not slot.isdigit():
        return False
    path = directory / f"{int(slot)}.sock"
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
