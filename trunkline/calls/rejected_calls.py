"""Records of rejected inbound calls: written after the 603, at a bounded rate per number.

An ``auto_reject`` number answers every INVITE without waiting for the
database. Each rejected call is then stored as one row (status ``failed``,
``hangup_reason: rejected``) with its ``call.ended`` event, in one transaction
of the organisation's *sheddable* database work; a number gets at most
``rate`` records per second (burst ``RECORD_BURST``). Rejections beyond that,
or whose write is shed because the organisation's queue is full, are only
counted (``trunkline_rejected_calls_unrecorded_total``), so a flood of INVITEs
costs a bounded number of rows and never delays other organisations' work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from trunkline import metrics
from trunkline.calls.lifecycle import call_ended_event
from trunkline.ratelimit import KeyedBuckets
from trunkline.storage.fairness import DatabaseWorkShed, database_work
from trunkline.storage.models import Call, PhoneNumber, utcnow
from trunkline.storage.stores import CallStore

log = logging.getLogger("trunkline.call")

RECORD_BURST = 10
MAX_NUMBERS_TRACKED = 10_000

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class RejectedCallRecords:
    def __init__(
        self, repository: CallStore, rate: float, spawn: Spawn, now: Callable[[], float]
    ) -> None:
        self._repository = repository
        self._buckets = KeyedBuckets(rate, RECORD_BURST, MAX_NUMBERS_TRACKED) if rate > 0 else None
        self._spawn = spawn
        self._now = now

    def record(self, number: PhoneNumber, initiated: Call) -> None:
        """Count the rejection; store it when the number's record rate allows."""
        metrics.CALLS.labels("failed", "rejected").inc()
        if self._buckets is None or not self._buckets.take(number.id, self._now()).allowed:
            metrics.REJECTED_CALLS_UNRECORDED.inc()
            return
        now = utcnow()
        call = replace(
            initiated,
            status="failed",
            hangup_reason="rejected",
            failure_detail="auto_reject",
            ended_at=now,
            updated_at=now,
        )
        self._spawn(self._store(call, number.agent_identity_id))

    async def _store(self, call: Call, agent_identity_id: str | None) -> None:
        event = call_ended_event(call, agent_identity_id)
        try:
            with database_work(call.organization_id, sheddable="rejected_call"):
                await self._repository.create_call(call, events=[event])
        except DatabaseWorkShed:
            metrics.REJECTED_CALLS_UNRECORDED.inc()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rejected call not stored", extra={"call_id": call.id})
