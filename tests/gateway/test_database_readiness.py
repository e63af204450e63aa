"""/readyz reports a stalled database queue, and the queue-wait gauge shows it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.gateway.conftest import Trunkline
from trunkline.storage.sql import SqlRepository

STALL_SECONDS = 0.3


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    return {"transcription": "off", "database_stall_seconds": STALL_SECONDS}


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any, str]:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        text = await response.text()
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, text


def _gauge(scrape: str, name: str) -> float:
    (line,) = [row for row in scrape.splitlines() if row.startswith(name + " ")]
    return float(line.split()[1])


async def test_readyz_is_503_while_a_database_job_waits_too_long(trunkline: Trunkline) -> None:
    repository = trunkline.services.repository
    assert isinstance(repository, SqlRepository)
    organization = await repository.create_organization("acme")
    base = f"http://127.0.0.1:{trunkline.http_port}"
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold_the_database() -> None:
        async with repository.transaction():
            holding.set()
            await release.wait()

    async with aiohttp.ClientSession() as http:
        assert (await _get(http, base + "/readyz"))[0] == 200
        holder = asyncio.create_task(hold_the_database())
        await holding.wait()
        queued = asyncio.create_task(repository.list_numbers(organization.id))
        try:
            await asyncio.sleep(STALL_SECONDS * 2)
            status, body, _ = await _get(http, base + "/readyz")
            assert status == 503
            assert body["status"] == "database stalled"
            assert "database" in body["detail"]
            _, _, scrape = await _get(http, base + "/metrics")
            assert _gauge(scrape, "trunkline_db_queue_wait_seconds") >= STALL_SECONDS
            assert _gauge(scrape, "trunkline_db_queue_depth") >= 1
        finally:
            release.set()
            await holder
        assert await queued == []
        assert (await _get(http, base + "/readyz"))[0] == 200
