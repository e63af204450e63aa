"""Storing a transcript segment: one write that also queues its ``transcript.segment`` event."""

from __future__ import annotations

from trunkline.gateway.call_lifecycle import CallLifecycle
from trunkline.services import Services
from trunkline.storage.models import EventDraft, TranscriptParty

MAX_SEGMENT_CHARS = 10_000


async def store_transcript_segment(
    services: Services, lifecycle: CallLifecycle, party: str, text: str, ts_ms: int
) -> None:
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
    await services.repository.add_transcript_segment(record.id, who, text, ts_ms, events=[event])
    if services.outbox is not None:
        services.outbox.wake()
