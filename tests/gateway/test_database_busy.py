"""A tenant with a full database queue is refused at once: SIP 503 and API 503, with Retry-After."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.gateway.conftest import NUMBER, Trunkline
from tests.gateway.sip_peer import CarrierCall
from trunkline.crypto import hash_token, new_token
from trunkline.storage.fairness import API_AUTH_TENANT, SIP_LOOKUP_TENANT, database_work
from trunkline.storage.sql import SqlRepository


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    return {"transcription": "off", "database_queue_per_org": 1}


async def _queued(repository: SqlRepository, tenant: str) -> None:
    """Wait until ``tenant`` has its one job queued (background work may queue beside it)."""
    for _ in range(500):
        if repository.scheduler.waiting(tenant) >= 1:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing of {tenant!r} queued")


async def test_a_full_queue_answers_503_instead_of_waiting(trunkline: Trunkline) -> None:
    repository = trunkline.services.repository
    assert isinstance(repository, SqlRepository)
    # The set-up is not the system tenant's: a background job of the system
    # tenant queued at this moment would fill its one-job queue.
    with database_work("test-set-up"):
        await trunkline.number("auto_reject", None)
        organization = await repository.create_organization("bystander")
        token = new_token()
        await repository.create_token(organization.id, None, hash_token(token))
    url = f"http://127.0.0.1:{trunkline.http_port}/api/v1/phone/numbers"
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold_the_database() -> None:
        with database_work("test-holder"):
            async with repository.transaction():
                holding.set()
                await release.wait()

    first, second = await CarrierCall.open(trunkline.sip_port), None
    holder = asyncio.create_task(hold_the_database())
    try:
        await holding.wait()
        waiting_invite = asyncio.create_task(first.invite(NUMBER))  # its lookup queues
        await _queued(repository, SIP_LOOKUP_TENANT)
        second = await CarrierCall.open(trunkline.sip_port)
        refused = await asyncio.wait_for(second.invite("+15550100002"), 5)
        assert refused.status == 503
        assert refused.headers.get("Retry-After") == "5"
        async with aiohttp.ClientSession(headers={"X-API-Key": token}) as http:
            waiting_get = asyncio.create_task(http.get(url))  # its token lookup queues
            await _queued(repository, API_AUTH_TENANT)
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "1"
                assert "Database busy" in (await response.json())["detail"]
            release.set()
            async with await asyncio.wait_for(waiting_get, 10) as response:
                assert response.status == 200
        assert (await asyncio.wait_for(waiting_invite, 10)).status == 603
    finally:
        release.set()
        await holder
        first.close()
        if second is not None:
            second.close()
