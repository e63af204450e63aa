"""At start-up, end the calls this owner left live when its last run stopped without ending them.

A process killed mid-call (``kill -9``, a power cut, an out-of-memory kill)
leaves its calls ``initiated``, ``ringing`` or ``answered`` with no process
carrying them. The owner name (``<node id>:<worker slot>``) survives a restart,
so the next process of that slot, before it takes any call, ends each such call
through ``CallLifecycle``: ``answered`` → ``completed``, not yet answered →
``failed``, ``hangup_reason: gateway_restart``, with ``call.ended`` queued in
the same write. A recording the call left (``recordings/<call>.wav.partial``)
is repaired and published like any other (``recording_url``,
``recording.ready``); an answered call's ``ended_at`` is then when its recorded
audio stops. Calls of other slots and other nodes are not touched. A call that
another process ended while this one was lost (``node_lost``) gets its
crash-left recording published the same way.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from trunkline.calls.lifecycle import CallLifecycle
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.media.recording import PARTIAL_SUFFIX, recorded_seconds, repair_partial
from trunkline.storage.models import CALL_ENDED_STATUSES, Call, CallStatus
from trunkline.storage.stores import CallStore, NumberStore

log = logging.getLogger("trunkline.restart_sweep")
PAGE = 100
RESTART_DETAIL = "the gateway restarted while the call was live"


class SweptStore(CallStore, NumberStore, Protocol):
    """The calls left live, and their numbers (for the agent identity of their events)."""


async def end_calls_left_live(
    repository: SweptStore, publisher: RecordingPublisher, recordings: Path, owner: str
) -> int:
    """End every call ``owner`` left live; returns how many this process ended.

    ``recordings`` is the directory where calls' recordings are written while live.
    """
    ended = 0
    seen: set[str] = set()
    while True:
        page = [call for call in await repository.list_live_calls(owner, limit=PAGE)
                if call.id not in seen]  # fmt: skip
        if not page:
            break
        for call in page:
            seen.add(call.id)
            try:
                if await _end_call(repository, publisher, call, recordings):
                    ended += 1
            except Exception:
                log.exception("could not end a call left live", extra={"call_id": call.id})
    if ended:
        log.warning("ended %d calls left live by the last run of %s", ended, owner)
    await publish_recordings_left(repository, publisher, recordings, owner)
    return ended


async def publish_recordings_left(
    repository: SweptStore, publisher: RecordingPublisher, recordings: Path, owner: str
) -> int:
    """Publish the crash-left recordings of ``owner``'s calls that another process ended.

    When this process was lost long enough for a survivor to end its calls
    (``node_lost``, ``calls.node_takeover``), their partial recordings stayed on
    this machine's disk; they are repaired and published now, like the others.
    """
    published = 0
    for call_id in await asyncio.to_thread(_partial_recordings, recordings):
        call = await repository.get_call(call_id)
        if call is None or call.owner != owner or call.recording_key is not None:
            continue
        if call.status not in CALL_ENDED_STATUSES:
            continue  # live: the sweep above could not end it, and it is logged there
        recording = await asyncio.to_thread(_recording_left, recordings, call.id)
        if recording is None:
            continue
        number = await repository.get_number(call.phone_number_id)
        identity = number.agent_identity_id if number is not None else None
        if await publisher.publish(call, identity, recording):
            published += 1
    if published:
        log.warning("published %d recordings of calls of %s ended elsewhere", published, owner)
    return published


def _partial_recordings(recordings: Path) -> list[str]:
    """The call ids of the partial recordings in ``recordings`` (none when it does not exist)."""
    try:
        names = [entry.name for entry in recordings.iterdir()]
    except FileNotFoundError:
        return []
    return sorted(n.removesuffix(PARTIAL_SUFFIX) for n in names if n.endswith(PARTIAL_SUFFIX))


async def _end_call(
    repository: SweptStore, publisher: RecordingPublisher, call: Call, recordings: Path
) -> bool:
    number = await repository.get_number(call.phone_number_id)
    lifecycle = CallLifecycle(
        call,
        repository,
        agent_identity_id=number.agent_identity_id if number is not None else None,
    )
    recording = await asyncio.to_thread(_recording_left, recordings, call.id)
    changes: dict[str, datetime] = {}
    if recording is not None and call.started_at is not None:
        try:
            seconds = await asyncio.to_thread(recorded_seconds, recording)
            changes["ended_at"] = call.started_at + timedelta(seconds=seconds)
        except Exception:  # unreadable audio: the call ends now; the file is still published
            log.warning("cannot read the length of %s", recording.name)
    status: CallStatus = "completed" if call.status == "answered" else "failed"
    if not await lifecycle.transition(
        status,
        hangup_reason="gateway_restart",
        detail=RESTART_DETAIL if status == "failed" else None,
        changes=changes,
    ):
        return False  # ended meanwhile by another process (an API hang-up, say)
    if recording is not None:
        await publisher.publish(lifecycle.record, lifecycle.agent_identity_id, recording)
    return True


def _recording_left(recordings: Path, call_id: str) -> Path | None:
    """The call's crash-left recording, repaired; None when it left none."""
    partial = recordings / f"{call_id}{PARTIAL_SUFFIX}"
    final = recordings / f"{call_id}.wav"
    try:
        return repair_partial(partial)
    except FileNotFoundError:
        pass  # none, or repaired already (by another worker's start)
    except (OSError, ValueError) as exc:
        log.error("cannot repair %s: %s", partial.name, exc, extra={"call_id": call_id})
        return None
    return final if final.exists() else None
