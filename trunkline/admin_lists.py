"""``trunkline org list``, ``identity list`` and ``number list``: what the database holds, as tables.

Each prints a header line and one tab-separated line per row (``cut -f1``
gives the ids), read straight from the database, so they work whether or not
the daemon runs. Nothing secret is printed: no signing keys, no trunk
passwords (``number list`` shows only whether one is set).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

from trunkline.storage.models import AgentIdentity, Organization, PhoneNumber
from trunkline.storage.repository import Repository

PAGE = 500

ORG_HEADER = ("id", "name", "created_at")
IDENTITY_HEADER = ("id", "organization", "handle", "display_name", "created_at")
NUMBER_HEADER = (
    "id",
    "organization",
    "number",
    "type",
    "status",
    "agent",
    "incoming_call_action",
    "provider",
    "trunk",
)


class UnknownOrganization(LookupError):
    """``--org`` names no organisation."""


def _row(values: Iterable[str | None]) -> str:
    return "\t".join("-" if value in (None, "") else str(value) for value in values)


async def _organizations(
    repository: Repository, organization_id: str | None
) -> AsyncIterator[Organization]:
    if organization_id is not None:
        organization = await repository.get_organization(organization_id)
        if organization is None:
            raise UnknownOrganization(organization_id)
        yield organization
        return
    offset = 0
    while True:
        page = await repository.list_organizations(limit=PAGE, offset=offset)
        for organization in page:
            yield organization
        if len(page) < PAGE:
            return
        offset += PAGE


async def list_organizations(repository: Repository) -> list[str]:
    lines = [_row(ORG_HEADER)]
    async for organization in _organizations(repository, None):
        lines.append(
            _row((organization.id, organization.name, organization.created_at.isoformat()))
        )
    return lines


async def list_identities(repository: Repository, organization_id: str | None) -> list[str]:
    lines = [_row(IDENTITY_HEADER)]
    async for organization in _organizations(repository, organization_id):
        for identity in await repository.list_identities(organization.id):
            lines.append(_describe_identity(identity))
    return lines


def _describe_identity(identity: AgentIdentity) -> str:
    return _row(
        (
            identity.id,
            identity.organization_id,
            f"@{identity.agent_handle}",
            identity.display_name,
            identity.created_at.isoformat(),
        )
    )


async def list_numbers(repository: Repository, organization_id: str | None) -> list[str]:
    """Every number of the organisation(s), released ones too, with its agent's handle."""
    lines = [_row(NUMBER_HEADER)]
    async for organization in _organizations(repository, organization_id):
        handles = {
            identity.id: f"@{identity.agent_handle}"
            for identity in await repository.list_identities(organization.id)
        }
        for number in await repository.list_numbers(organization.id):
            lines.append(_describe_number(number, handles.get))
    return lines


def _describe_number(number: PhoneNumber, handle: Callable[[str], str | None]) -> str:
    agent = handle(number.agent_identity_id) if number.agent_identity_id else None
    trunk = number.trunk_address
    if trunk and number.auth_password_encrypted:
        trunk += " (password set)"
    return _row(
        (
            number.id,
            number.organization_id,
            number.number,
            number.type,
            number.status,
            agent or number.agent_identity_id,
            number.incoming_call_action,
            number.provider,
            trunk,
        )
    )
