"""What one call's speech still owes: engine jobs in flight and transcript segments being stored.

Transcription and speech output both start jobs on the speech workers and
store transcript segments; ``SpeechWork`` counts them, gives both the call's
speech time base (milliseconds since the session began, from an injected
clock) and, once the call ends, a future that resolves when everything owed
has been stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from trunkline.speech.workers import Batch, Done

log = logging.getLogger("trunkline.speech")

Party = Literal["local", "remote", "system"]
StoreSegment = Callable[[Party, str, int], Awaitable[None]]


class JobPool(Protocol):
    """Speech workers as a call sees them (``speech.workers.SpeechWorkers``)."""

    @property
    def idle(self) -> bool: ...

    @property
    def queued(self) -> int: ...

    def submit(self, priority: int, work: Callable[[], Any], done: Done) -> bool:
        """Queue ``work``; ``done`` runs on the event loop afterwards. False when full."""
        ...

    def submit_batched(self, priority: int, batch: Batch, item: Any, done: Done) -> bool:
        """Queue ``item`` for ``batch``, run together with other items of it."""
        ...


class SpeechWork:
    def __init__(
        self,
        call_id: str,
        store_segment: StoreSegment,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call_id = call_id
        self._store = store_segment
        self._clock = clock
        self._started = clock()
        self._outstanding = 0
        self._drained: asyncio.Future[None] | None = None

    def now_ms(self) -> int:
        """Milliseconds since the call's media began: the offset of a transcript segment."""
        return int((self._clock() - self._started) * 1000)

    def job_started(self) -> None:
        self._outstanding += 1

    def job_done(self) -> None:
        self._outstanding -= 1
        self._maybe_drained()

    def store(self, party: Party, text: str, ts_ms: int) -> None:
        """Store one transcript segment in the background (counted until it is written)."""
        self._outstanding += 1
        task = asyncio.ensure_future(self._store(party, text, ts_ms))

        def written(task: asyncio.Future[None]) -> None:
            self._outstanding -= 1
            if not task.cancelled() and task.exception() is not None:
                log.error("transcript segment not stored: %s", task.exception(),
                          extra={"call_id": self.call_id})  # fmt: skip
            self._maybe_drained()

        task.add_done_callback(written)

    def drained(self) -> asyncio.Future[None]:
        """Resolves once every job started and segment stored so far is done."""
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
            self._maybe_drained()
        return self._drained

    def _maybe_drained(self) -> None:
        if self._drained is not None and self._outstanding <= 0 and not self._drained.done():
            self._drained.set_result(None)
