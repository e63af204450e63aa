"""Call actions between trunkline processes on different machines, over PostgreSQL LISTEN/NOTIFY.

Workers on one machine use the Unix sockets of ``owner_channel``; processes on
several machines behind a SIP dispatcher share only the database. Each of
them listens on one channel with a connection of its own. An API hang-up for a
call another process owns is a notification addressed to that owner
(``{"op": "hangup", "to", "from", "id", "call_id"}``); the owner hangs up and
answers with ``{"op": "done", "to", "id", "ok"}``. Everyone sees every
notification and ignores those not addressed to it; payloads carry ids only,
never secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger("trunkline.owner_notify")
CHANNEL = "trunkline_call_actions"
ASK_SECONDS = 3.0
MAX_PAYLOAD = 1000  # NOTIFY allows 8000 bytes; ours are ids


class PgCallActions:
    def __init__(self, dsn: str, owner: str, on_hangup: Callable[[str], Awaitable[bool]]) -> None:
        self._dsn = dsn
        self.owner = owner
        self._on_hangup = on_hangup
        self._connection: asyncpg.Connection | None = None
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._connection = await asyncpg.connect(self._dsn)
        await self._connection.add_listener(CHANNEL, self._notified)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        for future in self._waiting.values():
            if not future.done():
                future.set_result(False)
        for task in list(self._tasks):
            task.cancel()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.remove_listener(CHANNEL, self._notified)
            await connection.close()

    async def ask_hangup(self, owner: str, call_id: str) -> bool:
        """Ask the process that owns ``call_id`` to hang it up; False if no answer comes."""
        if self._connection is None:
            return False
        request_id = secrets.token_hex(8)
        answered = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answered
        try:
            await self._notify(
                {"op": "hangup", "to": owner, "from": self.owner, "id": request_id,
                 "call_id": call_id}
            )  # fmt: skip
            async with asyncio.timeout(ASK_SECONDS):
                return await answered
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            log.info("owner %s did not answer: %s", owner, exc, extra={"call_id": call_id})
            return False
        finally:
            self._waiting.pop(request_id, None)

    async def _notify(self, message: dict[str, Any]) -> None:
        assert self._connection is not None
        payload = json.dumps(message, separators=(",", ":"))
        await self._connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        if len(payload) > MAX_PAYLOAD:
            return
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("to") != self.owner:
            return
        if message.get("op") == "done":
            future = self._waiting.get(str(message.get("id")))
            if future is not None and not future.done():
                future.set_result(message.get("ok") is True)
        elif message.get("op") == "hangup" and isinstance(message.get("call_id"), str):
            task = asyncio.ensure_future(self._hang_up(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _hang_up(self, message: dict[str, Any]) -> None:
        try:
            ok = await self._on_hangup(message["call_id"])
        except Exception:
            log.exception("hang-up for another process failed")
            ok = False
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await self._notify(
                {"op": "done", "to": message.get("from"), "id": message.get("id"), "ok": ok}
            )
