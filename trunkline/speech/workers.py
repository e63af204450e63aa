"""Bounded pools of speech worker threads: the event loop hands work off and never waits.

``submit`` is non-blocking: a job goes into a bounded priority queue or is
refused (the caller counts it and moves on). Under overload the queue sheds
work in a fixed order: an urgent job (a final transcript) that finds the queue
full takes the place of the newest queued background job (a partial), whose
owner is told with ``JobShed`` (counted); only when nothing can be shed is the
urgent job refused. Worker threads run jobs in priority order (finals before
partials, first come first served within a priority) and hand each result back
to the event loop with ``call_soon_threadsafe``.

Batching: jobs submitted with ``submit_batched`` name a batch function. A
worker that takes such a job also takes the jobs queued right behind it with
the same function and priority (at most ``max_batch``; finals are never
batched with partials, which would make them wait for the partials' work) and
runs them as one call, so a model serves several calls' utterances per pass. A job whose owner has gone (the call ended) is still run to
completion but its result is simply ignored by the owner.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trunkline import metrics
from trunkline.config import WorkerPriority

log = logging.getLogger("trunkline.speech")

URGENT = 0  # final transcripts, speech the caller is waiting for
NORMAL = 1
BACKGROUND = 2  # partial transcripts: worth doing only when nothing else waits

Done = Callable[[Any, BaseException | None, float], None]  # result, error, seconds of work
Batch = Callable[[list[Any]], list[Any]]  # items in, one result per item out


class JobShed(Exception):
    """The job was dropped from the queue to make room for a more urgent one."""


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    work: Callable[[], Any] | None = field(compare=False)
    done: Done = field(compare=False)
    batch: Batch | None = field(compare=False, default=None)
    item: Any = field(compare=False, default=None)


LOW_NICENESS = 10


def lower_own_priority(priority: WorkerPriority) -> None:
    """Lower the calling thread's CPU priority (Linux applies both per thread; elsewhere a
    no-op).

    Speech work is never more urgent than audio. A model run on the core the event loop
    runs on otherwise makes the loop's thread wait its turn when a packet or the tick
    wakes it: in ``benchmarks.load``'s transcription profile that broke the 5 ms added
    latency at 12 calls per core at normal priority. ``IDLE`` (SCHED_IDLE) lets any normal
    thread that wakes take the core at once; ``LOW`` (nice 10) leaves a worker about a
    tenth of a core it shares with a busy loop. The price of both: a worker preempted
    while it holds the GIL keeps the loop waiting until it runs again, which matters only
    when other busy processes share the cores.
    """
    if priority is WorkerPriority.NORMAL or not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        if priority is WorkerPriority.IDLE:
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
        elif os.getpriority(os.PRIO_PROCESS, thread) < LOW_NICENESS:
            os.setpriority(os.PRIO_PROCESS, thread, LOW_NICENESS)
    except OSError as exc:
        log.warning("could not lower a speech worker's priority: %s", exc)


def spare_cores() -> int:
    """Cores this process may run on, less one for the event loop (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class SpeechWorkers:
    """``threads`` workers behind a queue of at most ``max_queued`` jobs."""

    def __init__(
        self,
        name: str,
        *,
        threads: int,
        max_queued: int,
        max_batch: int = 1,
        priority: WorkerPriority = WorkerPriority.IDLE,
    ) -> None:
        self.name = name
        self._priority = priority
        self._heap: list[_Job] = []
        self._max_queued = max_queued
        self._max_batch = max(1, max_batch)
        self._ready = threading.Condition(threading.Lock())
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        self._order = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._stopped = False
        self.busy = 0  # jobs running now (changed under the lock by the worker threads)
        self.refused = 0
        self.shed = 0
        self._depth = metrics.SPEECH_QUEUE_DEPTH.labels(name)
        self._refused = metrics.SPEECH_JOBS_REFUSED.labels(name)
        self._shed = metrics.SPEECH_JOBS_SHED.labels(name)
        self._batch_size = metrics.SPEECH_BATCH_SIZE.labels(name)

    @property
    def queued(self) -> int:
        return len(self._heap)

    @property
    def idle(self) -> bool:
        return self.busy == 0 and not self._heap

    def submit(self, priority: int, work: Callable[[], Any], done: Done) -> bool:
        """Queue ``work``; ``done`` runs on the event loop afterwards. False when full."""
        return self._put(priority, work, done, None, None)

    def submit_batched(self, priority: int, batch: Batch, item: Any, done: Done) -> bool:
        """Queue ``item`` for ``batch`` (run with other items of the same function)."""
        return self._put(priority, None, done, batch, item)

    def _put(
        self,
        priority: int,
        work: Callable[[], Any] | None,
        done: Done,
        batch: Batch | None,
        item: Any,
    ) -> bool:
        if self._stopped:
            return False
        if not self._started:
            self._loop = asyncio.get_running_loop()
            self._started = True
            for thread in self._threads:
                thread.start()
        job = _Job(priority, next(self._order), work, done, batch, item)
        shed: _Job | None = None
        with self._ready:
            if len(self._heap) >= self._max_queued:
                shed = self._sheddable(priority)
                if shed is None:
                    self.refused += 1
                    self._refused.inc()
                    return False
                self._heap.remove(shed)
                heapq.heapify(self._heap)
                self.shed += 1
                self._shed.inc()
            heapq.heappush(self._heap, job)
            self._depth.set(len(self._heap))
            self._ready.notify()
        if shed is not None:
            shed.done(None, JobShed(), 0.0)  # on the loop already: submit is called there
        return True

    def _sheddable(self, priority: int) -> _Job | None:
        """The newest queued background job, when ``priority`` is more urgent than it."""
        candidates = [j for j in self._heap if j.priority == BACKGROUND and priority < BACKGROUND]
        return max(candidates, key=lambda j: j.order) if candidates else None

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the running jobs, drop the queued ones, end the threads."""
        if self._stopped:
            return
        self._stopped = True
        with self._ready:
            self._heap.clear()
            self._ready.notify_all()
        if not self._started:
            return
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._depth.set(0)

    def _take(self) -> list[_Job] | None:
        """The next job and, for a batched one, the same-function jobs queued behind it."""
        with self._ready:
            while not self._heap:
                if self._stopped:
                    return None
                self._ready.wait()
            jobs = [heapq.heappop(self._heap)]
            batch, priority = jobs[0].batch, jobs[0].priority
            while (
                batch is not None
                and self._heap
                and len(jobs) < self._max_batch
                and self._heap[0].batch == batch
                and self._heap[0].priority == priority  # a final never waits for partials
            ):
                jobs.append(heapq.heappop(self._heap))
            self.busy += 1
            self._depth.set(len(self._heap))
            return jobs

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        lower_own_priority(self._priority)
        while True:
            jobs = self._take()
            if jobs is None:
                return
            started = time.perf_counter()
            results: list[Any] = [None] * len(jobs)
            error: BaseException | None = None
            try:
                first = jobs[0]
                if first.batch is not None:
                    results = first.batch([job.item for job in jobs])
                    self._batch_size.observe(len(jobs))
                else:
                    assert first.work is not None
                    results = [first.work()]
            except Exception as exc:  # an engine failure must not end the worker
                error = exc
            seconds = time.perf_counter() - started
            with self._ready:
                self.busy -= 1
            try:
                for job, result in zip(jobs, results, strict=True):
                    loop.call_soon_threadsafe(job.done, result, error, seconds / len(jobs))
            except RuntimeError:
                return  # the loop is closed: the process is ending
