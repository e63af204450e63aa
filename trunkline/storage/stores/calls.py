"""CallStore: call records and their transcripts, what the call flow and call API persist."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from trunkline.storage.models import (
    Call,
    CallStatus,
    EventDraft,
    TranscriptParty,
    TranscriptSegment,
)


class CallStore(Protocol):
    """Calls (live and ended) and the transcript segments spoken in them."""

    async def create_call(
        self, call: Call, events: Sequence[EventDraft] = (), *, max_live_per_org: int = 0
    ) -> Call:
        """Store a new call, with ``events``, in one transaction.

        With ``max_live_per_org``, raises CallLimitReached (nothing written) when the
        organisation already has that many live calls (initiated, ringing, answered),
        whichever process or machine carries them: the count and the insert hold a
        lock on the organisation, so concurrent admissions cannot exceed it.
        """
        ...

    async def get_call(self, call_id: str) -> Call | None:
        """The call, or None."""
        ...

    async def list_calls(
        self,
        organization_id: str,
        *,
        phone_number_id: str | None = None,
        agent_identity_id: str | None = None,
        live: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Call]:
        """Newest first. ``agent_identity_id`` keeps calls on that identity's numbers;
        ``live`` keeps calls that have not ended (initiated, ringing, answered)."""
        ...

    async def list_live_calls(self, owner: str, *, limit: int = 100) -> list[Call]:
        """Calls ``owner`` carries that have not ended (initiated, ringing, answered), oldest first."""
        ...

    async def update_call(
        self,
        call_id: str,
        changes: Mapping[str, Any],
        *,
        only_if_status: Sequence[CallStatus] | None = None,
        events: Sequence[EventDraft] = (),
    ) -> Call | None:
        """Apply ``changes`` (and updated_at) when the call's status is in ``only_if_status``.

        Returns the updated call, or None when the call does not exist or its
        status did not match (nothing written, no events). The check and write
        are one atomic statement, so two racing hang-ups cannot both win.
        """
        ...

    async def add_transcript_segment(
        self,
        call_id: str,
        party: TranscriptParty,
        text: str,
        ts_ms: int,
        events: Sequence[EventDraft] = (),
    ) -> TranscriptSegment:
        """Append with the next ``seq`` for the call (0, 1, 2, … without gaps).

        Raises StorageError when there is no such call.
        """
        ...

    async def add_transcript_segments(
        self,
        call_id: str,
        segments: Sequence[tuple[TranscriptParty, str, int]],
        events: Sequence[EventDraft] = (),
    ) -> list[TranscriptSegment]:
        """Append (party, text, ts_ms) segments in order, in one transaction, with the next seqs."""
        ...

    async def list_transcripts(self, call_id: str) -> list[TranscriptSegment]:
        """The call's segments, ordered by seq."""
        ...

    async def search_transcripts(
        self,
        phone_number_id: str,
        query: str,
        *,
        party: TranscriptParty | None = None,
        limit: int = 50,
    ) -> list[TranscriptSegment]:
        """Full-text search over the number's calls' segments, best match first."""
        ...
