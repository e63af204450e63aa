"""A finished recording goes into the blob store, is linked to its call and announced.

Used at hang-up and by the start-up sweep that ends the calls a crash left live,
so both publish a recording the same way: stored under ``recordings/<call>.wav``,
``recording_key`` set on the call and ``recording.ready`` queued in the same
transaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from trunkline.data_dir import make_private_dirs
from trunkline.storage.blobs import BlobStore, LocalBlobStore
from trunkline.storage.models import Call, EventDraft
from trunkline.storage.stores import CallStore

log = logging.getLogger("trunkline.recording")


class RecordingPublisher:
    """Publishes finished recordings: the blob store, the call's ``recording_key``, the event."""

    def __init__(
        self, repository: CallStore, blob_store: BlobStore, wake_outbox: Callable[[], None]
    ) -> None:
        self._repository = repository
        self._blob_store = blob_store
        self._wake_outbox = wake_outbox

    async def publish(self, record: Call, agent_identity_id: str | None, path: Path) -> bool:
        """Store ``path`` as the call's recording and queue ``recording.ready``; False on failure."""
        key = f"recordings/{record.id}.wav"
        store = self._blob_store
        try:
            if isinstance(store, LocalBlobStore):
                await asyncio.to_thread(_move, path, store.path_for(key))
            else:
                await store.put(key, await asyncio.to_thread(path.read_bytes), "audio/wav")
                await asyncio.to_thread(path.unlink)
        except OSError:
            log.exception("recording could not be stored", extra={"call_id": record.id})
            return False
        event = EventDraft(
            event_type="recording.ready",
            organization_id=record.organization_id,
            phone_number_id=record.phone_number_id,
            agent_identity_id=agent_identity_id,
            data={"call_id": record.id, "content_type": "audio/wav", "channels": 2,
                  "sample_rate": 8000},
        )  # fmt: skip
        await self._repository.update_call(record.id, {"recording_key": key}, events=[event])
        self._wake_outbox()
        return True


def _move(source: Path, target: Path) -> None:
    make_private_dirs(target.parent)
    os.replace(source, target)
