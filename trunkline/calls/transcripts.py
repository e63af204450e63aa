"""Storing transcript segments, each with its ``transcript.segment`` event, in batches.

A call's segments go through one writer: the first is written at once, and
those arriving while a write is in flight wait and go together in the next
one (up to ``MAX_BATCH`` per transaction), so an agent sending thousands of
``transcript`` frames costs a few transactions, not thousands. At most
``MAX_PENDING_PER_CALL`` segments wait per call; more are dropped. The writes
are the organisation's sheddable database work: when its queue is full the
batch is dropped rather than delaying calls and API requests. Both drops are
counted in ``trunkline_db_shed_total{kind="transcript"}``.

``store_transcript_segment`` returns once its segment is written (or dropped),
so callers that wait for it (the end of a call) still see it stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from trunkline import metrics
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.storage.fairness import DatabaseWorkShed, database_work
from trunkline.storage.models import EventDraft, TranscriptParty
from trunkline.storage.stores import CallStore

log = logging.getLogger("trunkline.call")

MAX_SEGMENT_CHARS = 10_000
MAX_BATCH = 25
MAX_PENDING_PER_CALL = 1_000


@dataclass(slots=True)
class _Pending:
    party: TranscriptParty
    text: str
    ts_ms: int
    event: EventDraft
    written: asyncio.Future[None]


@dataclass(slots=True)
class _CallWriter:
    organization_id: str
    pending: list[_Pending] = field(default_factory=list)
    task: asyncio.Future[None] | None = None


_WRITERS: dict[str, _CallWriter] = {}  # calls with segments waiting or being written


async def store_transcript_segment(
    repository: CallStore,
    wake_outbox: Callable[[], None],
    lifecycle: CallLifecycle,
    party: str,
    text: str,
    ts_ms: int,
) -> None:
    """Store one segment with its ``transcript.segment`` event; ``wake_outbox`` after each write."""
    record = lifecycle.record
    who: TranscriptParty = (
        "local" if party == "local" else "system" if party == "system" else "remote"
    )
    text = text[:MAX_SEGMENT_CHARS]
    ts_ms = max(0, ts_ms)
    event = EventDraft(
        event_type="transcript.segment",
        organization_id=record.organization_id,
        phone_number_id=record.phone_number_id,
        agent_identity_id=lifecycle.agent_identity_id,
        data={"call_id": record.id, "party": who, "text": text, "ts_ms": ts_ms},
    )
    writer = _WRITERS.get(record.id)
    if writer is None:
        writer = _WRITERS[record.id] = _CallWriter(record.organization_id)
        writer.task = asyncio.ensure_future(_write(repository, wake_outbox, record.id, writer))
    elif len(writer.pending) >= MAX_PENDING_PER_CALL:
        metrics.DB_SHED.labels("transcript").inc()
        return
    written = asyncio.get_running_loop().create_future()
    writer.pending.append(_Pending(who, text, ts_ms, event, written))
    await asyncio.shield(written)


async def _write(
    repository: CallStore, wake_outbox: Callable[[], None], call_id: str, writer: _CallWriter
) -> None:
    """Write the call's waiting segments, a batch per transaction, until none wait."""
    try:
        while writer.pending:
            batch = writer.pending[:MAX_BATCH]
            del writer.pending[:MAX_BATCH]
            await _write_batch(repository, wake_outbox, call_id, writer.organization_id, batch)
    finally:
        del _WRITERS[call_id]
        for pending in writer.pending:  # only when cancelled (shutdown)
            if not pending.written.done():
                pending.written.cancel()


async def _write_batch(
    repository: CallStore,
    wake_outbox: Callable[[], None],
    call_id: str,
    organization_id: str,
    batch: list[_Pending],
) -> None:
    segments = [(p.party, p.text, p.ts_ms) for p in batch]
    try:
        with database_work(organization_id, sheddable="transcript"):
            await repository.add_transcript_segments(
                call_id, segments, events=[p.event for p in batch]
            )
    except DatabaseWorkShed:
        metrics.DB_SHED.labels("transcript").inc(len(batch) - 1)  # the shed job counted one
        outcome: BaseException | None = None
    except Exception as exc:
        outcome = exc
    else:
        outcome = None
        wake_outbox()
    for pending in batch:
        if pending.written.done():
            continue
        if outcome is None:
            pending.written.set_result(None)
        else:
            pending.written.set_exception(outcome)
