"""``trunkline calls tail [--org ID] [--follow]``: the latest calls, then each change as it happens.

It reads the ``calls`` table, where every process of every machine sharing
the database writes its calls' states, so it needs no token and shows the
calls of all workers (it works while the daemon is down, too). First it prints
the ``--lines`` most recently changed calls; with ``--follow`` it then polls
every ``--interval`` seconds and prints a line whenever a call appears or its
status, hang-up reason, failure detail or recording changes (ringing,
answered, completed, failed …), until Ctrl-C. Each poll looks at the newest
``WINDOW`` calls of each organisation, so memory stays bounded however long it
follows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from trunkline.storage.models import Call
from trunkline.storage.repository import Repository

WINDOW = 200
ORGANIZATION_PAGE = 500
HEADER = (
    "updated_at\tcall\torganization\tdirection\tlocal\tremote\tstatus"
    "\thangup_reason\tfailure_detail\trecording"
)

Write = Callable[[str], None]
CallState = tuple[str, str | None, str | None, bool]


class UnknownOrganization(LookupError):
    """``--org`` names no organisation."""


def describe(call: Call) -> str:
    """One tab-separated line: when, which call, which way, between whom, how it stands."""
    return "\t".join(
        (
            call.updated_at.isoformat(),
            call.id,
            call.organization_id,
            call.direction,
            call.local_phone_number,
            call.remote_phone_number,
            call.status,
            call.hangup_reason or "-",
            call.failure_detail or "-",
            "yes" if call.recording_key else "-",
        )
    )


def _state(call: Call) -> CallState:
    return (call.status, call.hangup_reason, call.failure_detail, call.recording_key is not None)


@dataclass(slots=True)
class CallsTail:
    """What the last poll saw: each call in the window with its state."""

    repository: Repository
    organization_id: str | None
    seen: dict[str, CallState]

    async def _window(self) -> list[Call]:
        if self.organization_id is not None:
            organization_ids = [self.organization_id]
        else:
            organization_ids = []
            while True:
                page = await self.repository.list_organizations(
                    limit=ORGANIZATION_PAGE, offset=len(organization_ids)
                )
                organization_ids.extend(organization.id for organization in page)
                if len(page) < ORGANIZATION_PAGE:
                    break
        calls: list[Call] = []
        for organization_id in organization_ids:
            calls.extend(await self.repository.list_calls(organization_id, limit=WINDOW))
        return sorted(calls, key=lambda call: (call.updated_at, call.id))

    async def first(self, lines: int) -> list[Call]:
        """The ``lines`` most recently changed calls, oldest first."""
        organization_id = self.organization_id
        if organization_id and await self.repository.get_organization(organization_id) is None:
            raise UnknownOrganization(organization_id)
        window = await self._window()
        self.seen = {call.id: _state(call) for call in window}
        return window[-lines:] if lines > 0 else []

    async def changes(self) -> list[Call]:
        """The calls that appeared or changed since the last poll, oldest change first."""
        window = await self._window()
        changed = [call for call in window if self.seen.get(call.id) != _state(call)]
        self.seen = {call.id: _state(call) for call in window}
        return changed


async def tail(
    repository: Repository,
    write: Write,
    *,
    organization_id: str | None,
    lines: int,
    follow: bool,
    interval: float,
) -> None:
    """Write the latest calls, then (``follow``) every change until cancelled."""
    calls = CallsTail(repository, organization_id, {})
    recent = await calls.first(lines)
    write(HEADER)
    for call in recent:
        write(describe(call))
    while follow:
        await asyncio.sleep(interval)
        for call in await calls.changes():
            write(describe(call))
