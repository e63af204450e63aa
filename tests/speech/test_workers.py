"""Speech worker pools: bounded, prioritised, results back on the event loop."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

import pytest

from trunkline.config import WorkerPriority, settings_from
from trunkline.speech.engines import transcription_workers
from trunkline.speech.workers import BACKGROUND, URGENT, SpeechWorkers, spare_cores


async def test_a_full_queue_refuses_and_counts() -> None:
    pool = SpeechWorkers("test-full", threads=1, max_queued=2)
    gate = threading.Event()
    results: list[Any] = []

    def done(result: Any, error: BaseException | None, seconds: float) -> None:
        results.append(result)

    try:
        assert pool.submit(URGENT, lambda: gate.wait(5) and "first", done)
        for _ in range(50):  # the worker picks up the first job, the queue empties
            if pool.queued == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.submit(URGENT, lambda: "second", done)
        assert pool.submit(URGENT, lambda: "third", done)
        assert not pool.submit(URGENT, lambda: "refused", done)
        assert pool.refused == 1
        gate.set()
        for _ in range(200):
            if len(results) == 3:
                break
            await asyncio.sleep(0.01)
        assert results == ["first", "second", "third"]
    finally:
        gate.set()
        pool.stop()


async def test_urgent_jobs_overtake_background_ones() -> None:
    pool = SpeechWorkers("test-priority", threads=1, max_queued=10)
    gate = threading.Event()
    order: list[str] = []

    def done(result: Any, error: BaseException | None, seconds: float) -> None:
        order.append(result)

    try:
        pool.submit(URGENT, lambda: gate.wait(5) and "running", done)
        await asyncio.sleep(0.05)
        pool.submit(BACKGROUND, lambda: "partial", done)
        pool.submit(URGENT, lambda: "final", done)
        gate.set()
        for _ in range(200):
            if len(order) == 3:
                break
            await asyncio.sleep(0.01)
        assert order == ["running", "final", "partial"]
    finally:
        gate.set()
        pool.stop()


async def test_an_engine_error_reaches_the_caller_and_the_worker_survives() -> None:
    pool = SpeechWorkers("test-errors", threads=1, max_queued=4)
    outcomes: list[tuple[Any, str]] = []

    def done(result: Any, error: BaseException | None, seconds: float) -> None:
        outcomes.append((result, type(error).__name__ if error else ""))

    def broken() -> str:
        raise RuntimeError("engine broke")

    try:
        pool.submit(URGENT, broken, done)
        pool.submit(URGENT, lambda: "fine", done)
        for _ in range(200):
            if len(outcomes) == 2:
                break
            await asyncio.sleep(0.01)
        assert outcomes == [(None, "RuntimeError"), ("fine", "")]
    finally:
        pool.stop()
    assert not pool.submit(URGENT, lambda: "late", done)


async def wait_for(condition: Any, tries: int = 300) -> None:
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_under_overload_partials_are_shed_for_finals_and_counted() -> None:
    pool = SpeechWorkers("test-shed", threads=1, max_queued=3)
    gate = threading.Event()
    outcomes: list[tuple[Any, str]] = []

    def done(result: Any, error: BaseException | None, seconds: float) -> None:
        outcomes.append((result, type(error).__name__ if error else ""))

    try:
        assert pool.submit(URGENT, lambda: gate.wait(5) and "running", done)
        await wait_for(lambda: pool.queued == 0)
        assert pool.submit(BACKGROUND, lambda: "partial 1", done)
        assert pool.submit(BACKGROUND, lambda: "partial 2", done)
        assert pool.submit(URGENT, lambda: "final 1", done)
        # Full: each final takes the place of the newest partial still queued.
        assert pool.submit(URGENT, lambda: "final 2", done)
        assert pool.submit(URGENT, lambda: "final 3", done)
        assert pool.shed == 2
        assert outcomes == [(None, "JobShed"), (None, "JobShed")]
        # Nothing left to shed: a final is refused, and a partial never sheds anything.
        assert not pool.submit(URGENT, lambda: "final 4", done)
        assert not pool.submit(BACKGROUND, lambda: "partial 3", done)
        assert (pool.shed, pool.refused) == (2, 2)
        gate.set()
        await wait_for(lambda: len(outcomes) == 6)
        assert [r for r, e in outcomes if not e] == ["running", "final 1", "final 2", "final 3"]
    finally:
        gate.set()
        pool.stop()


async def test_queued_batched_jobs_run_together_finals_apart_from_partials() -> None:
    pool = SpeechWorkers("test-batch", threads=1, max_queued=10, max_batch=3)
    gate = threading.Event()
    batches: list[list[str]] = []
    results: list[Any] = []

    def upper(items: list[Any]) -> list[Any]:
        batches.append(list(items))
        return [str(item).upper() for item in items]

    def done(result: Any, error: BaseException | None, seconds: float) -> None:
        results.append(result)

    try:
        pool.submit(URGENT, lambda: gate.wait(5) and "running", done)
        await wait_for(lambda: pool.queued == 0)
        pool.submit_batched(BACKGROUND, upper, "partial a", done)
        pool.submit_batched(URGENT, upper, "final b", done)
        pool.submit_batched(URGENT, upper, "final c", done)
        pool.submit_batched(BACKGROUND, upper, "partial d", done)
        gate.set()
        await wait_for(lambda: len(results) == 5)
        assert batches == [["final b", "final c"], ["partial a", "partial d"]]
        assert results == ["running", "FINAL B", "FINAL C", "PARTIAL A", "PARTIAL D"]
    finally:
        gate.set()
        pool.stop()


def test_one_worker_per_spare_core_by_default() -> None:
    assert spare_cores() == max(1, len(os.sched_getaffinity(0)) - 1)
    assert transcription_workers(settings_from({})) == spare_cores()
    assert transcription_workers(settings_from({"transcription_workers": 3})) == 3


async def run_in_pool(pool: SpeechWorkers, work: Any) -> Any:
    """The result of ``work`` run on one of ``pool``'s threads."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(result: Any, error: BaseException | None, seconds: float) -> None:
        future.set_exception(error) if error else future.set_result(result)

    try:
        assert pool.submit(URGENT, work, done)
        return await asyncio.wait_for(future, 10)
    finally:
        pool.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread policy is Linux's")
async def test_workers_run_at_idle_priority_by_default_and_leave_the_loop_alone() -> None:
    pool = SpeechWorkers("test-idle", threads=1, max_queued=4)
    assert await run_in_pool(pool, lambda: os.sched_getscheduler(0)) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the event loop's thread is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
async def test_low_priority_workers_are_niced_and_normal_ones_are_not() -> None:
    low = SpeechWorkers("test-low", threads=1, max_queued=4, priority=WorkerPriority.LOW)
    niceness = await run_in_pool(low, lambda: os.getpriority(os.PRIO_PROCESS, 0))
    assert niceness >= 10
    assert os.getpriority(os.PRIO_PROCESS, 0) < 10
    normal = SpeechWorkers("test-normal", threads=1, max_queued=4, priority=WorkerPriority.NORMAL)
    assert await run_in_pool(normal, lambda: os.sched_getscheduler(0)) == os.SCHED_OTHER


def test_the_priority_is_a_setting() -> None:
    assert settings_from({}).speech.speech_worker_priority is WorkerPriority.IDLE
    speech = settings_from({"speech_worker_priority": "low"}).speech
    assert speech.speech_worker_priority is WorkerPriority.LOW
