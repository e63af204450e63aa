"""One organisation's INVITE flood does not hold up another organisation's API requests.

Organisation A's ``auto_reject`` number gets 3,000 INVITEs over UDP in ten
seconds from a carrier process while organisation B lists its numbers over
HTTP, on SQLite and on PostgreSQL. Every INVITE must get its 603, B's p99 must
stay under 500 ms, and only a bounded number of rejected calls become rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.backends import BACKENDS, postgres_schema, postgres_test_url
from tests.gateway.conftest import NUMBER, Trunkline
from trunkline import metrics
from trunkline.calls.rejected_calls import RECORD_BURST
from trunkline.crypto import hash_token, new_token

INVITES = 3_000
FLOOD_SECONDS = 10.0
P99_LIMIT = 0.5
RECORD_RATE = 1.0  # the default TRUNKLINE_REJECTED_CALL_RECORD_RATE
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
async def trunkline_overrides(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    overrides: dict[str, Any] = {"transcription": "off", "api_rate_per_second": 1000.0}
    if request.param == "sqlite":
        yield overrides
        return
    async with postgres_schema() as schema:
        url = await postgres_test_url()
        yield {**overrides, "database_url": f"{url}?search_path={schema}"}


async def _flood(sip_port: int) -> dict[str, Any]:
    """Run the carrier process (``tests.gateway.invite_flood``); its JSON summary."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.gateway.invite_flood", "--port", str(sip_port),
        "--number", NUMBER, "--count", str(INVITES), "--seconds", str(FLOOD_SECONDS),
        "--wait", "20", cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    summary: dict[str, Any] = json.loads(output)
    return summary


async def _second_organisation(trunkline: Trunkline) -> str:
    repository = trunkline.services.repository
    organization = await repository.create_organization("bystander")
    token = new_token()
    await repository.create_token(organization.id, None, hash_token(token))
    return token


async def _measure(http: aiohttp.ClientSession, url: str, until: asyncio.Event) -> list[float]:
    """Latencies of back-to-back ``GET`` requests until ``until`` is set."""
    latencies: list[float] = []
    while not until.is_set():
        started = time.monotonic()
        async with http.get(url) as response:
            assert response.status == 200, await response.text()
            await response.read()
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.01)
    return latencies


@pytest.mark.timeout(90)
async def test_an_invite_flood_does_not_delay_another_organisations_api(
    trunkline: Trunkline,
) -> None:
    await trunkline.number("auto_reject", None)
    token = await _second_organisation(trunkline)
    unrecorded = metrics.REJECTED_CALLS_UNRECORDED._value.get()
    flooded = asyncio.Event()
    url = f"http://127.0.0.1:{trunkline.http_port}/api/v1/phone/numbers"
    async with aiohttp.ClientSession(headers={"X-API-Key": token}) as http:
        measuring = asyncio.create_task(_measure(http, url, flooded))
        try:
            summary = await _flood(trunkline.sip_port)
        finally:
            flooded.set()
        latencies = sorted(await measuring)
    assert summary["final"] == {"603": INVITES}, summary
    assert len(latencies) >= 100
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert p99 < P99_LIMIT, f"p99 {p99:.3f} s, max {latencies[-1]:.3f} s"
    # Rows only within the record rate; the other rejections are counted instead.
    repository = trunkline.services.repository
    flooded_number = await repository.find_active_number(NUMBER)
    assert flooded_number is not None
    for _ in range(50):
        rows = await repository.list_calls(flooded_number.organization_id, limit=INVITES)
        counted = metrics.REJECTED_CALLS_UNRECORDED._value.get() - unrecorded
        if len(rows) + counted == INVITES:
            break
        await asyncio.sleep(0.1)  # the last records are still being written
    assert 1 <= len(rows) <= RECORD_BURST + RECORD_RATE * 40
    assert all(r.status == "failed" and r.hangup_reason == "rejected" for r in rows)
    assert len(rows) + counted == INVITES
