"""Bounded pools of speech worker threads: the event loop hands work off and never waits.

``submit`` is non-blocking: a job goes into a bounded priority queue or, when
the queue is full, is refused (the caller counts it and moves on). Worker
threads run jobs in priority order (finals before partials, first come first
served within a priority) and hand each result back to the event loop with
``call_soon_threadsafe``. A job whose owner has gone (the call ended) is still
run to completion but its result is simply ignored by the owner.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trunkline import metrics

log = logging.getLogger("trunkline.speech")

URGENT = 0  # final transcripts, speech the caller is waiting for
NORMAL = 1
BACKGROUND = 2  # partial transcripts: worth doing only when nothing else waits

Done = Callable[[Any, BaseException | None, float], None]  # result, error, seconds of work


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    work: Callable[[], Any] = field(compare=False)
    done: Done = field(compare=False)


def _END() -> None:
    """The job that ends a worker thread."""


def _ignore(result: Any, error: BaseException | None, seconds: float) -> None:
    return None


class SpeechWorkers:
    """``threads`` workers behind a queue of at most ``max_queued`` jobs."""

    def __init__(self, name: str, *, threads: int, max_queued: int) -> None:
        self.name = name
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue(max_queued)
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        self._order = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._stopped = False
        self.busy = 0  # jobs running now (changed under _busy_lock by the worker threads)
        self._busy_lock = threading.Lock()
        self.refused = 0
        self._depth = metrics.SPEECH_QUEUE_DEPTH.labels(name)
        self._refused = metrics.SPEECH_JOBS_REFUSED.labels(name)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        return self.busy == 0 and self._queue.empty()

    def submit(self, priority: int, work: Callable[[], Any], done: Done) -> bool:
        """Queue ``work``; ``done`` runs on the event loop afterwards. False when full."""
        if self._stopped:
            return False
        if not self._started:
            self._loop = asyncio.get_running_loop()
            self._started = True
            for thread in self._threads:
                thread.start()
        try:
            self._queue.put_nowait(_Job(priority, next(self._order), work, done))
        except queue.Full:
            self.refused += 1
            self._refused.inc()
            return False
        self._depth.set(self._queue.qsize())
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the running jobs, drop the queued ones, end the threads."""
        if self._stopped:
            return
        self._stopped = True
        if not self._started:
            return
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._queue.put(_Job(-1, -1, _END, _ignore))
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._depth.set(0)

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            job = self._queue.get()
            if job.work is _END:
                return
            with self._busy_lock:
                self.busy += 1
            started = time.perf_counter()
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.work()
            except Exception as exc:  # an engine failure must not end the worker
                error = exc
            seconds = time.perf_counter() - started
            with self._busy_lock:
                self.busy -= 1
            self._depth.set(self._queue.qsize())
            try:
                loop.call_soon_threadsafe(job.done, result, error, seconds)
            except RuntimeError:
                return  # the loop is closed: the process is ending
