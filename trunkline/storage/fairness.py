"""Fair admission to the database: one organisation's flood cannot starve the others.

Every transaction first takes one of a fixed number of slots (one for SQLite,
the pool size for PostgreSQL). When none is free the job queues under its
*tenant* (an organisation id, or a named bucket for lookups made before the
organisation is known) and its *class*:

- essential work (API requests, the call path) is served before sheddable work;
- sheddable work (records of rejected calls, transcript segments) gets every
  ``SHEDDABLE_SHARE``-th slot while both wait, so it is late but not starved.

Within a class, tenants take turns (round-robin), each tenant's own jobs in
arrival order; so a waiting job has at most one job of every other busy tenant
ahead of it, however many that tenant has queued. Queues are bounded per
tenant: a full queue refuses essential work at once (``DatabaseBusy``) and
drops sheddable work (``DatabaseWorkShed``), both counted.

Who is asking travels in a context variable (``database_work``), so tasks a
request or a call starts inherit its tenant.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from trunkline import metrics
from trunkline.storage.errors import StorageError

SYSTEM_TENANT = "system"  # background workers (outbox, maintenance)
API_AUTH_TENANT = "api-auth"  # the token lookup, before the organisation is known
SIP_LOOKUP_TENANT = "sip-lookup"  # the dialled-number lookup of an INVITE
QUEUE_PER_TENANT = 256
SHEDDABLE_PER_TENANT = 64
SHEDDABLE_SHARE = 8


class DatabaseBusy(StorageError):
    """The tenant already has as many database jobs queued as it may; try again later."""


class DatabaseWorkShed(StorageError):
    """Sheddable database work was dropped because its tenant's queue was full."""


@dataclass(frozen=True, slots=True)
class DatabaseWork:
    tenant: str
    shed_kind: str | None = None  # None: essential; otherwise what is dropped when full


_SYSTEM_WORK = DatabaseWork(SYSTEM_TENANT)
_CURRENT: ContextVar[DatabaseWork | None] = ContextVar("trunkline_database_work", default=None)


@contextmanager
def database_work(tenant: str, *, sheddable: str | None = None) -> Iterator[None]:
    """Database calls inside (and tasks started inside) run as ``tenant``'s work."""
    token = _CURRENT.set(DatabaseWork(tenant, sheddable))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def bind_database_tenant(tenant: str) -> None:
    """The rest of the current task (and tasks it starts) is ``tenant``'s essential work."""
    _CURRENT.set(DatabaseWork(tenant))


def current_database_work() -> DatabaseWork:
    return _CURRENT.get() or _SYSTEM_WORK


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[None]
    queued_at: float


class _ClassQueue:
    """One class's waiting jobs: a FIFO per tenant, tenants served round-robin."""

    def __init__(self) -> None:
        self.by_tenant: OrderedDict[str, deque[_Waiter]] = OrderedDict()
        self.size = 0

    def waiting(self, tenant: str) -> int:
        queue = self.by_tenant.get(tenant)
        return 0 if queue is None else len(queue)

    def push(self, tenant: str, waiter: _Waiter) -> None:
        self.by_tenant.setdefault(tenant, deque()).append(waiter)
        self.size += 1

    def pop_next(self) -> _Waiter | None:
        """The head of the first tenant's queue; that tenant moves to the back."""
        while self.by_tenant:
            tenant, queue = next(iter(self.by_tenant.items()))
            waiter = queue.popleft()
            self.size -= 1
            if queue:
                self.by_tenant.move_to_end(tenant)
            else:
                del self.by_tenant[tenant]
            if not waiter.future.done():
                return waiter
        return None

    def remove(self, tenant: str, waiter: _Waiter) -> None:
        queue = self.by_tenant.get(tenant)
        if queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        self.size -= 1
        if not queue:
            del self.by_tenant[tenant]

    def oldest(self) -> float | None:
        heads = [q[0].queued_at for q in self.by_tenant.values() if q]
        return min(heads) if heads else None


_LIVE: weakref.WeakSet[DatabaseScheduler] = weakref.WeakSet()


class DatabaseScheduler:
    """Hands out ``slots`` concurrent database slots fairly (see the module docstring)."""

    def __init__(
        self,
        slots: int,
        *,
        queue_per_tenant: int = QUEUE_PER_TENANT,
        sheddable_per_tenant: int = SHEDDABLE_PER_TENANT,
    ) -> None:
        if slots < 1:
            raise ValueError("a database scheduler needs at least one slot")
        self.slots = slots
        self.queue_per_tenant = queue_per_tenant
        self.sheddable_per_tenant = sheddable_per_tenant
        self._free = slots
        self._essential = _ClassQueue()
        self._sheddable = _ClassQueue()
        self._grants = 0
        _LIVE.add(self)

    def configure(self, *, queue_per_tenant: int, sheddable_per_tenant: int) -> None:
        if queue_per_tenant < 1 or sheddable_per_tenant < 1:
            raise ValueError("database queue bounds must be at least 1")
        self.queue_per_tenant = queue_per_tenant
        self.sheddable_per_tenant = sheddable_per_tenant

    @property
    def queued(self) -> int:
        return self._essential.size + self._sheddable.size

    def waiting(self, tenant: str) -> int:
        """How many of ``tenant``'s jobs are queued, of either class."""
        return self._essential.waiting(tenant) + self._sheddable.waiting(tenant)

    def oldest_wait(self) -> float:
        """Seconds the longest-waiting queued job has waited (0 when nothing waits)."""
        heads = [t for t in (self._essential.oldest(), self._sheddable.oldest()) if t is not None]
        return max(0.0, time.monotonic() - min(heads)) if heads else 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one database slot as the current ``database_work``."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    async def acquire(self) -> None:
        if self._free > 0 and self.queued == 0:
            self._free -= 1
            return
        work = current_database_work()
        queue = self._essential if work.shed_kind is None else self._sheddable
        limit = self.queue_per_tenant if work.shed_kind is None else self.sheddable_per_tenant
        if queue.waiting(work.tenant) >= limit:
            if work.shed_kind is None:
                metrics.DB_REFUSED.inc()
                raise DatabaseBusy("too many database requests queued for this organisation")
            metrics.DB_SHED.labels(work.shed_kind).inc()
            raise DatabaseWorkShed(work.shed_kind)
        waiter = _Waiter(asyncio.get_running_loop().create_future(), time.monotonic())
        queue.push(work.tenant, waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release()  # granted just as the caller gave up: pass the slot on
            else:
                queue.remove(work.tenant, waiter)
            raise

    def release(self) -> None:
        waiter = self._next_waiter()
        if waiter is None:
            self._free += 1
            return
        waiter.future.set_result(None)

    def _next_waiter(self) -> _Waiter | None:
        self._grants += 1
        first, second = self._essential, self._sheddable
        if self._grants % SHEDDABLE_SHARE == 0:
            first, second = second, first
        return first.pop_next() or second.pop_next()


def oldest_database_wait() -> float:
    """The longest wait of any queued database job in this process (scrape time)."""
    return max((s.oldest_wait() for s in list(_LIVE)), default=0.0)


def queued_database_jobs() -> int:
    return sum(s.queued for s in list(_LIVE))


metrics.DB_QUEUE_WAIT.set_function(oldest_database_wait)
metrics.DB_QUEUE_DEPTH.set_function(lambda: float(queued_database_jobs()))
