"""The benchmarks' database: one organisation with one auto-accept number for the agent.

``benchmarks.bridge`` and ``benchmarks.load`` seed a SQLite file for the node
they measure, ``benchmarks.cluster`` a PostgreSQL database the nodes share;
both go through trunkline's own repository, so the number is stored exactly as
the API would store it.
"""

from __future__ import annotations

from typing import Any

from trunkline.storage import open_repository
from trunkline.storage.models import PhoneNumber, new_id, utcnow
from trunkline.storage.repository import Repository

NUMBER = "+15550100500"  # the number every benchmark call dials


async def seed_number(
    repository: Repository, agent_url: str, agent_audio: str = "mulaw8k", **options: Any
) -> str:
    """Add the organisation and ``NUMBER`` (answered by ``agent_url``); returns the organisation id.

    ``options`` are further ``PhoneNumber`` fields (e.g. ``recording_enabled``).
    Calls are recorded unless ``options`` say otherwise (the default).
    """
    organization = await repository.create_organization("bench")
    identity = await repository.create_identity(organization.id, "bench", None)
    now = utcnow()
    await repository.create_number(
        PhoneNumber(
            id=new_id(), organization_id=organization.id, number=NUMBER, type="local",
            status="active", incoming_call_action="auto_accept",
            client_websocket_url=agent_url, incoming_call_webhook_url=None,
            agent_identity_id=identity.id, state="NY", country="US", created_at=now,
            updated_at=now, agent_audio=agent_audio,  # type: ignore[arg-type]
            **options,
        ),
        max_active=10,
    )  # fmt: skip
    return organization.id


async def seed_database(
    database_url: str, agent_url: str, agent_audio: str = "mulaw8k", **options: Any
) -> str:
    """Migrate the database ``database_url`` names (SQLite or PostgreSQL) and seed it."""
    repository = await open_repository(database_url)
    try:
        return await seed_number(repository, agent_url, agent_audio, **options)
    finally:
        await repository.close()
