"""Limits that hold across nodes: two repositories on one database, each with its own connections.

On PostgreSQL each node has its own pool on one schema; on SQLite each has its
own connection to one file (as the workers of one machine do). Admissions
race from both at once; the database alone decides.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.backends import BACKENDS, postgres_schema, postgres_test_url
from tests.storage.test_blobs import s3_endpoint  # noqa: F401 - the moto S3 server fixture
from tests.storage.test_repository import number_record
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.storage.blobs import S3BlobStore
from trunkline.storage.errors import CallLimitReached, NumberCapReached
from trunkline.storage.models import Call, PhoneNumber
from trunkline.storage.postgres import PostgresRepository
from trunkline.storage.repository import Repository
from trunkline.storage.sqlite import SqliteRepository


@dataclass
class TwoNodes:
    a: Repository
    b: Repository


@pytest.fixture(params=BACKENDS)
async def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TwoNodes]:
    if request.param == "sqlite":
        path = tmp_path / f"shared-{uuid.uuid4().hex[:8]}.sqlite"
        a = await SqliteRepository.open(path)
        b = await SqliteRepository.open(path)
        try:
            await a.migrate()
            await b.migrate()
            yield TwoNodes(a, b)
        finally:
            await a.close()
            await b.close()
        return
    url = await postgres_test_url()
    async with postgres_schema() as schema:
        pa = await PostgresRepository.open(url, search_path=schema, max_size=6)
        pb = await PostgresRepository.open(url, search_path=schema, max_size=6)
        try:
            await asyncio.gather(pa.migrate(), pb.migrate())  # one applies, one finds it done
            yield TwoNodes(pa, pb)
        finally:
            await pa.close()
            await pb.close()


async def an_organisation_with_a_number(repo: Repository) -> tuple[str, PhoneNumber]:
    org = await repo.create_organization("acme")
    number = await repo.create_number(number_record(org.id, "+15550100001"), max_active=10)
    return org.id, number


def inbound_call(number: PhoneNumber, owner: str) -> Call:
    return Call.initiated(
        number, remote_phone_number="+14155550123", direction="inbound", owner=owner
    )


async def test_concurrent_admissions_on_two_nodes_never_exceed_the_call_limit(
    nodes: TwoNodes,
) -> None:
    org_id, number = await an_organisation_with_a_number(nodes.a)
    attempts = [
        node.create_call(inbound_call(number, f"{name}:0"), max_live_per_org=3)
        for _ in range(8)
        for node, name in ((nodes.a, "a"), (nodes.b, "b"))
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    admitted = [r for r in results if isinstance(r, Call)]
    refused = [r for r in results if isinstance(r, CallLimitReached)]
    assert (len(admitted), len(refused)) == (3, 13), results
    assert len(await nodes.b.list_calls(org_id, live=True)) == 3

    # An ended call frees its place, whichever node ended it and whichever node asks.
    ended = await nodes.b.update_call(
        admitted[0].id, {"status": "completed", "hangup_reason": "remote"}
    )
    assert ended is not None
    assert await nodes.a.create_call(inbound_call(number, "a:0"), max_live_per_org=3)
    with pytest.raises(CallLimitReached):
        await nodes.b.create_call(inbound_call(number, "b:0"), max_live_per_org=3)
    # Other organisations and calls without a limit are not counted against it.
    assert await nodes.b.create_call(inbound_call(number, "b:0"))
    other = await nodes.b.create_organization("globex")
    theirs = await nodes.b.create_number(number_record(other.id, "+15550100002"), max_active=10)
    assert await nodes.a.create_call(inbound_call(theirs, "a:0"), max_live_per_org=1)


async def test_number_cap_holds_when_two_nodes_provision_at_once(nodes: TwoNodes) -> None:
    org = await nodes.a.create_organization("acme")
    attempts = [
        node.create_number(number_record(org.id, f"+1555010{i:04d}"), max_active=3)
        for i, node in enumerate([nodes.a, nodes.b] * 6)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    created = [r for r in results if isinstance(r, PhoneNumber)]
    refused = [r for r in results if isinstance(r, NumberCapReached)]
    assert (len(created), len(refused)) == (3, 9), results
    assert len(await nodes.b.list_numbers(org.id)) == 3


async def test_a_recording_published_on_one_node_is_served_by_the_other(
    nodes: TwoNodes,
    s3_endpoint: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    options: dict[str, Any] = {"endpoint_url": s3_endpoint, "region": "us-east-1",
                               "access_key_id": "k", "secret_access_key": "s"}  # fmt: skip
    store_a = S3BlobStore("recordings", **options)
    store_b = S3BlobStore("recordings", **options)  # each node has its own client
    try:
        await (await store_a._s3()).create_bucket(Bucket="recordings")
        _, number = await an_organisation_with_a_number(nodes.a)
        call = await nodes.a.create_call(inbound_call(number, "a:0"))
        wav = tmp_path / f"{call.id}.wav"
        wav.write_bytes(b"RIFF....WAVE-recorded-on-a")
        assert await RecordingPublisher(nodes.a, store_a, lambda: None).publish(call, None, wav)
        assert not wav.exists()  # nothing is left on node a's disk

        seen_by_b = await nodes.b.get_call(call.id)
        assert seen_by_b is not None and seen_by_b.recording_key == f"recordings/{call.id}.wav"
        url = store_b.presigned_url(seen_by_b.recording_key, 300)
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert await response.read() == b"RIFF....WAVE-recorded-on-a"
    finally:
        await store_a.close()
        await store_b.close()
