"""The database scheduler: tenants take turns, queues are bounded, sheddable work is dropped."""

from __future__ import annotations

import asyncio

import pytest

from trunkline import metrics
from trunkline.storage.fairness import (
    DatabaseBusy,
    DatabaseScheduler,
    DatabaseWorkShed,
    database_work,
)


async def _job(
    scheduler: DatabaseScheduler, tenant: str, name: str, order: list[str], **work: str
) -> None:
    with database_work(tenant, **work):
        async with scheduler.slot():
            order.append(name)
            await asyncio.sleep(0)


async def _queued(scheduler: DatabaseScheduler, count: int) -> None:
    for _ in range(100):
        if scheduler.queued == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{scheduler.queued} queued, expected {count}")


async def test_a_busy_tenant_takes_turns_with_the_others() -> None:
    scheduler = DatabaseScheduler(1)
    order: list[str] = []
    await scheduler.acquire()  # the database is busy: everything below queues
    jobs = [asyncio.create_task(_job(scheduler, "a", f"a{i}", order)) for i in range(50)]
    await _queued(scheduler, 50)
    jobs.append(asyncio.create_task(_job(scheduler, "b", "b0", order)))
    await _queued(scheduler, 51)
    scheduler.release()
    await asyncio.gather(*jobs)
    assert order.index("b0") <= 1  # behind at most one of a's fifty, not all of them
    assert [n for n in order if n.startswith("a")] == [f"a{i}" for i in range(50)]


async def test_essential_work_goes_before_sheddable_work_without_starving_it() -> None:
    scheduler = DatabaseScheduler(1)
    order: list[str] = []
    await scheduler.acquire()
    jobs = [
        asyncio.create_task(_job(scheduler, "a", f"t{i}", order, sheddable="transcript"))
        for i in range(3)
    ]
    jobs += [asyncio.create_task(_job(scheduler, "b", f"e{i}", order)) for i in range(20)]
    await _queued(scheduler, 23)
    scheduler.release()
    await asyncio.gather(*jobs)
    assert order[0] == "e0"
    assert order.index("t0") < order.index("e19")  # a share of the slots goes to sheddable work
    assert sorted(order) == sorted([f"e{i}" for i in range(20)] + ["t0", "t1", "t2"])


async def test_full_queues_refuse_essential_work_and_shed_the_rest() -> None:
    scheduler = DatabaseScheduler(1, queue_per_tenant=2, sheddable_per_tenant=1)
    order: list[str] = []
    await scheduler.acquire()
    jobs = [asyncio.create_task(_job(scheduler, "a", f"a{i}", order)) for i in range(2)]
    jobs.append(asyncio.create_task(_job(scheduler, "a", "s0", order, sheddable="transcript")))
    await _queued(scheduler, 3)
    refused = metrics.DB_REFUSED._value.get()
    shed = metrics.DB_SHED.labels("transcript")._value.get()
    with pytest.raises(DatabaseBusy):
        await _job(scheduler, "a", "a2", order)
    with pytest.raises(DatabaseWorkShed):
        await _job(scheduler, "a", "s1", order, sheddable="transcript")
    assert metrics.DB_REFUSED._value.get() == refused + 1
    assert metrics.DB_SHED.labels("transcript")._value.get() == shed + 1
    other = asyncio.create_task(_job(scheduler, "b", "b0", order))  # a's bounds do not limit b
    await _queued(scheduler, 4)
    scheduler.release()
    await asyncio.gather(*jobs, other)
    assert sorted(order) == ["a0", "a1", "b0", "s0"]


async def test_a_cancelled_waiter_leaves_the_queue_and_loses_no_slot() -> None:
    scheduler = DatabaseScheduler(1)
    order: list[str] = []
    await scheduler.acquire()
    gone = asyncio.create_task(_job(scheduler, "a", "gone", order))
    stays = asyncio.create_task(_job(scheduler, "a", "stays", order))
    await _queued(scheduler, 2)
    assert scheduler.oldest_wait() >= 0.0
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert scheduler.queued == 1
    scheduler.release()
    await stays
    assert order == ["stays"]
    assert scheduler.queued == 0 and scheduler.oldest_wait() == 0.0
    async with scheduler.slot():  # the slot came back
        pass
