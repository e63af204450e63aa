"""Every process's heartbeat in the database, and what a survivor does when another stops beating.

Each process (owner name ``<node id>:<slot>``) keeps a row in ``nodes`` and
refreshes it every third of ``TRUNKLINE_NODE_LEASE_SECONDS``. A process whose
row is older than the lease is dead (``kill -9``, a power cut, a machine cut
off): one survivor claims its row (a lease of its own, so two survivors never
do the same work and a survivor that dies leaves the claim to expire), ends
each call the dead process left live through ``CallLifecycle`` — ``answered``
→ ``completed``, not yet answered → ``failed``, ``hangup_reason: node_lost``,
``ended_at`` its last heartbeat, ``call.ended`` queued in the same write — and
forgets the row. Each end is a conditional write, so a restart of the dead
process ending the same calls (``restart_sweep``) or an API hang-up racing the
survivor ends a call once and sends one ``call.ended``.

A process whose own heartbeat could not be written for longer than the lease
(the database was unreachable, say) takes nothing over at its next beat: the
others were probably cut off as well, and get one interval to beat first.

A process that finds it was declared dead (its row was claimed or forgotten
while it stalled) hangs up the calls it still carries — the database already
says they ended — and registers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from trunkline import metrics
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.storage.models import Call, CallStatus, NodeRecord, utcnow
from trunkline.storage.stores import CallStore, NodeStore, NumberStore

log = logging.getLogger("trunkline.node_takeover")
PAGE = 100
CLAIMS_PER_ROUND = 8  # dead processes taken over per heartbeat, so the beat itself is never late
LOST_DETAIL = "the process carrying the call stopped (its heartbeat expired)"

Clock = Callable[[], datetime]


class TakeoverStore(NodeStore, CallStore, NumberStore, Protocol):
    """Heartbeats, the calls a dead process left, and their numbers (for event identities)."""


async def end_calls_of_lost_node(repository: TakeoverStore, lost: NodeRecord) -> int:
    """End every call ``lost`` left live; returns how many this process ended."""
    ended = 0
    seen: set[str] = set()
    while True:
        page = [call for call in await repository.list_live_calls(lost.id, limit=PAGE)
                if call.id not in seen]  # fmt: skip
        if not page:
            return ended
        for call in page:
            seen.add(call.id)
            try:
                if await _end_call(repository, call, lost.last_seen):
                    ended += 1
            except Exception:
                log.exception("could not end a call of a lost process", extra={"call_id": call.id})


async def _end_call(repository: TakeoverStore, call: Call, last_seen: datetime) -> bool:
    number = await repository.get_number(call.phone_number_id)
    lifecycle = CallLifecycle(
        call,
        repository,
        agent_identity_id=number.agent_identity_id if number is not None else None,
    )
    status: CallStatus = "completed" if call.status == "answered" else "failed"
    # The call was last known to go on at the process's last heartbeat.
    ended_at = max(last_seen, call.started_at or call.created_at)
    return await lifecycle.transition(
        status,
        hangup_reason="node_lost",
        detail=LOST_DETAIL if status == "failed" else None,
        changes={"ended_at": ended_at},
    )


class NodeHeartbeat:
    """This process's heartbeat, and the takeover of processes that stopped beating."""

    def __init__(
        self,
        repository: TakeoverStore,
        owner: str,
        address: str | None,
        lease_seconds: float,
        *,
        wake_outbox: Callable[[], None],
        clock: Clock = utcnow,
    ) -> None:
        self._repository = repository
        self.owner = owner
        self._address = address
        self._lease = lease_seconds
        self._wake_outbox = wake_outbox
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._last_beat: datetime | None = None  # when this process last beat successfully
        # What to do when this process learns it was declared dead: set by the daemon
        # once the gateway runs (hang up the calls it still carries).
        self.on_declared_lost: Callable[[], Awaitable[None]] | None = None

    @property
    def interval(self) -> float:
        return self._lease / 3

    async def start(self) -> None:
        self._last_beat = self._clock()
        await self._repository.register_node(self.owner, self._address, self._last_beat)
        self._task = asyncio.create_task(self._run(), name="node-heartbeat")

    async def close(self) -> None:
        """Stop beating and leave: calls are ended by then, nothing is left to take over."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            nodes = {n.id: n for n in await self._repository.list_nodes()}
            mine = nodes.get(self.owner)
            if mine is not None and not await self._has_live_calls():
                await self._repository.forget_node(self.owner, mine.last_seen)

    async def _has_live_calls(self) -> bool:
        return bool(await self._repository.list_live_calls(self.owner, limit=1))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.round()
            except Exception:  # the database is away: try again at the next beat
                log.exception("heartbeat round failed")

    async def round(self) -> int:
        """Beat once, then take over what is dead; returns how many processes were taken over."""
        now = self._clock()
        previous, self._last_beat = self._last_beat, None
        if not await self._repository.beat(self.owner, now):
            log.error(
                "this process (%s) was declared lost: its calls were ended by another;"
                " hanging up the calls it still carries",
                self.owner,
            )
            if self.on_declared_lost is not None:
                await self.on_declared_lost()
            await self._repository.register_node(self.owner, self._address, self._clock())
        self._last_beat = now
        if previous is not None and (now - previous).total_seconds() > self._lease:
            # This process could not beat for a lease (the database was away, the loop
            # stalled): so could the others. They get one beat before anyone is judged.
            log.warning("heartbeat was %s late; no takeover this round", now - previous)
            return 0
        taken = 0
        for _ in range(CLAIMS_PER_ROUND):
            lost = await self._repository.claim_lost_node(self._clock(), self._lease, self.owner)
            if lost is None:
                break
            ended = await end_calls_of_lost_node(self._repository, lost)
            if await self._repository.list_live_calls(lost.id, limit=1):
                break  # a call could not be ended: the claim expires and it is tried again
            await self._repository.forget_node(lost.id, lost.last_seen)
            metrics.NODES_TAKEN_OVER.inc()
            taken += 1
            log.warning(
                "process %s stopped at %s; ended %d calls it left live",
                lost.id,
                lost.last_seen.isoformat(),
                ended,
            )
            if ended:
                self._wake_outbox()
        return taken
