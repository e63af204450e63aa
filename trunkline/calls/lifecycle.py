"""The one door through which a call's status changes.

Status moves only forward along the spec's graph::

    initiated → ringing → answered → completed
         └──────────┴──→ failed | canceled

Every change is one atomic conditional write (``CallStore.update_call`` with
``only_if_status`` = the allowed predecessors), so two racing hang-ups (the
caller's BYE and an API hang-up, say) cannot both win: the loser sees ``False``
and does nothing. The same write puts ``call.started`` / ``call.ended`` into the
outbox, logs ``old -> new`` with the call id, and notifies an optional observer
(metrics, the live-call registry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from trunkline import metrics
from trunkline.storage.models import (
    CALL_ENDED_STATUSES,
    Call,
    CallStatus,
    EventDraft,
    HangupReason,
    TranscriptSegment,
    utcnow,
)
from trunkline.storage.stores import CallStore

log = logging.getLogger("trunkline.call")

PREDECESSORS: Mapping[CallStatus, tuple[CallStatus, ...]] = {
    "ringing": ("initiated",),
    "answered": ("initiated", "ringing"),
    "completed": ("answered",),
    "failed": ("initiated", "ringing"),
    "canceled": ("initiated", "ringing"),
}

StatusObserver = Callable[[Call, CallStatus], None]


def call_event_data(call: Call) -> dict[str, Any]:
    """The call as event payloads and the API show it (Inkbox field names)."""

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": call.id,
        "local_phone_number": call.local_phone_number,
        "remote_phone_number": call.remote_phone_number,
        "direction": call.direction,
        "status": call.status,
        "client_websocket_url": call.client_websocket_url,
        "use_inkbox_tts": call.use_inkbox_tts,
        "use_inkbox_stt": call.use_inkbox_stt,
        "hangup_reason": call.hangup_reason,
        "started_at": iso(call.started_at),
        "ended_at": iso(call.ended_at),
        "created_at": iso(call.created_at),
        "updated_at": iso(call.updated_at),
    }


def _ended_event(call: Call, transcript: list[TranscriptSegment]) -> dict[str, Any]:
    data = call_event_data(call)
    duration = 0.0
    if call.started_at is not None and call.ended_at is not None:
        duration = max(0.0, (call.ended_at - call.started_at).total_seconds())
    data["duration_seconds"] = round(duration, 3)
    data["transcript"] = [{"party": s.party, "text": s.text, "ts_ms": s.ts_ms} for s in transcript]
    return data


def call_ended_event(call: Call, agent_identity_id: str | None) -> EventDraft:
    """``call.ended`` for a call that ended without a transcript (a rejected call)."""
    return EventDraft(
        event_type="call.ended",
        organization_id=call.organization_id,
        phone_number_id=call.phone_number_id,
        agent_identity_id=agent_identity_id,
        data=_ended_event(call, []),
    )


class CallLifecycle:
    """Owns one call's stored record and changes its status through ``transition``."""

    __slots__ = ("_observer", "_repository", "agent_identity_id", "record")

    def __init__(
        self,
        record: Call,
        repository: CallStore,
        *,
        agent_identity_id: str | None = None,
        observer: StatusObserver | None = None,
    ) -> None:
        self.record = record
        self._repository = repository
        self._observer = observer
        self.agent_identity_id = agent_identity_id

    @property
    def call_id(self) -> str:
        return self.record.id

    @property
    def status(self) -> CallStatus:
        return self.record.status

    @property
    def ended(self) -> bool:
        return self.record.status in CALL_ENDED_STATUSES

    async def transition(
        self,
        status: CallStatus,
        *,
        hangup_reason: HangupReason | None = None,
        detail: str | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> bool:
        """Move to ``status`` if the graph allows it from the stored status.

        Returns True when this call made the change (and its event is queued),
        False when the call had already moved on (nothing written).
        """
        allowed = PREDECESSORS.get(status)
        if allowed is None:
            raise ValueError(f"cannot transition a call to {status!r}")
        now = utcnow()
        update: dict[str, Any] = {"status": status, **(changes or {})}
        if status == "answered":
            update.setdefault("started_at", now)
        if status in CALL_ENDED_STATUSES:
            update.setdefault("ended_at", now)
            update["hangup_reason"] = hangup_reason
            if detail is not None:
                update["failure_detail"] = detail
        events = await self._events_for(status, update)
        previous = self.record.status
        updated = await self._repository.update_call(
            self.record.id, update, only_if_status=allowed, events=events
        )
        if updated is None:
            current = await self._repository.get_call(self.record.id)
            if current is not None:
                self.record = current
            return False
        self.record = updated
        log.info(
            "call %s -> %s",
            previous,
            status,
            extra={"call_id": updated.id, "hangup_reason": updated.hangup_reason},
        )
        if status in CALL_ENDED_STATUSES:
            metrics.CALLS.labels(status, updated.hangup_reason or "none").inc()
        if self._observer is not None:
            self._observer(updated, previous)
        return True

    async def _events_for(self, status: CallStatus, update: Mapping[str, Any]) -> list[EventDraft]:
        projected = _projected(self.record, update)
        if status == "answered":
            event_type, data = "call.started", call_event_data(projected)
        elif status in CALL_ENDED_STATUSES:
            transcript = await self._repository.list_transcripts(self.record.id)
            event_type, data = "call.ended", _ended_event(projected, transcript)
        else:
            return []
        return [
            EventDraft(
                event_type=event_type,
                organization_id=self.record.organization_id,
                phone_number_id=self.record.phone_number_id,
                agent_identity_id=self.agent_identity_id,
                data=data,
            )
        ]


def _projected(record: Call, update: Mapping[str, Any]) -> Call:
    """The record as it will read after ``update`` (for event payloads)."""
    return replace(record, **{k: v for k, v in update.items() if hasattr(record, k)})
