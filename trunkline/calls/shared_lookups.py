"""Concurrent identical lookups share one database query ("single flight").

A flood of INVITEs to one number asks the same questions (which number is
this, how is it routed) hundreds of times at once. The first caller starts the
query; callers arriving while it runs wait for the same answer instead of
queueing their own. Nothing is cached: once the query finishes the next caller
asks again, so an answer is never older than one query's run time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")
MAX_RUNNING = 1024


class SharedLookups:
    def __init__(self, max_running: int = MAX_RUNNING) -> None:
        self.max_running = max_running
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is None:
            if len(self._running) >= self.max_running:
                return await fetch()  # the table is bounded: beyond it, no sharing
            running = asyncio.ensure_future(fetch())
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        return cast(T, await asyncio.shield(running))

    def _finished(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved, even when every waiter gave up

    def __len__(self) -> int:
        return len(self._running)
