"""An agent's flood of transcript frames is stored in batches, without delaying another organisation.

The agent of organisation A answers a call and sends 2,000 ``transcript``
frames at once while organisation B lists its numbers back to back, on
SQLite and on PostgreSQL. The segments are written a batch per transaction;
what exceeds the per-call bound is dropped and counted. Every frame is either
stored (in order, seq without gaps) or counted, most are stored, and B's p99
stays under 500 ms.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.backends import BACKENDS, postgres_schema, postgres_test_url
from tests.gateway.conftest import NUMBER, Trunkline, audio_mode
from tests.gateway.sip_peer import CarrierCall
from trunkline import metrics
from trunkline.calls.transcripts import MAX_PENDING_PER_CALL
from trunkline.crypto import hash_token, new_token

FRAMES = 2_000
P99_LIMIT = 0.5


@pytest.fixture(params=BACKENDS)
async def trunkline_overrides(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    overrides: dict[str, Any] = {"transcription": "off", "api_rate_per_second": 1000.0}
    if request.param == "sqlite":
        yield overrides
        return
    async with postgres_schema() as schema:
        url = await postgres_test_url()
        yield {**overrides, "database_url": f"{url}?search_path={schema}"}


class ChattyAgent:
    """On ``start`` sends FRAMES transcript frames as fast as the socket takes them."""

    def __init__(self) -> None:
        self.url = ""
        self.sent = asyncio.Event()

    async def handle(self, connection: ServerConnection) -> None:
        async for message in connection:
            if json.loads(message).get("event") != "start":
                continue
            for index in range(FRAMES):
                frame = {"event": "transcript", "party": "local", "text": f"segment {index}"}
                await connection.send(json.dumps(frame))
            self.sent.set()


@pytest.fixture
async def chatty_agent() -> AsyncIterator[ChattyAgent]:
    agent = ChattyAgent()
    async with serve(agent.handle, "127.0.0.1", 0, process_response=audio_mode) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        yield agent


async def _measure(http: aiohttp.ClientSession, url: str, until: asyncio.Event) -> list[float]:
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
async def test_a_transcript_flood_is_stored_without_delaying_another_organisation(
    trunkline: Trunkline, chatty_agent: ChattyAgent
) -> None:
    repository = trunkline.services.repository
    await trunkline.number("auto_accept", chatty_agent.url)
    bystander = await repository.create_organization("bystander")
    token = new_token()
    await repository.create_token(bystander.id, None, hash_token(token))
    url = f"http://127.0.0.1:{trunkline.http_port}/api/v1/phone/numbers"
    stored = asyncio.Event()
    shed = metrics.DB_SHED.labels("transcript")
    shed_before = shed._value.get()
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": token}) as http:
            measuring = asyncio.create_task(_measure(http, url, stored))
            try:
                assert (await carrier.invite(NUMBER)).status == 200
                await asyncio.wait_for(chatty_agent.sent.wait(), 30)
                (call,) = trunkline.gateway.calls.values()
                call_id = call.lifecycle.call_id
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    segments = await repository.list_transcripts(call_id)
                    dropped = shed._value.get() - shed_before
                    if len(segments) + dropped >= FRAMES:
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # B keeps measuring while the last batches land
            finally:
                stored.set()
            latencies = sorted(await measuring)
        await carrier.bye(NUMBER)
    finally:
        carrier.close()
    assert len(segments) + dropped == FRAMES
    assert len(segments) >= MAX_PENDING_PER_CALL
    assert [s.seq for s in segments] == list(range(len(segments)))
    numbers = [int(s.text.split()[1]) for s in segments]
    assert numbers == sorted(numbers) and numbers[0] == 0
    assert len(latencies) >= 20
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    assert p99 < P99_LIMIT, f"p99 {p99:.3f} s, max {latencies[-1]:.3f} s over {len(latencies)}"
