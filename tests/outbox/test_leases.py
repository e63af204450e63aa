"""Delivery leases between workers on separate connections: each delivery sent by one at a time.

Two workers stand for two nodes: each has its own connection pool on one
PostgreSQL schema (or its own SQLite connection to one file) and its own HTTP
client, and a real HTTP receiver records who sent what and when.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from tests.backends import BACKENDS, make_repository, postgres_schema, postgres_test_url
from tests.outbox.test_delivery import T0, Clock, event, subscribed, worker
from tests.webhook_server import serving_hook
from trunkline.storage.models import EventDraft, WebhookAttempt, new_id, utcnow
from trunkline.storage.postgres import PostgresRepository
from trunkline.storage.repository import Repository


def lost_leases(stage: str) -> float:
    return REGISTRY.get_sample_value("trunkline_webhook_leases_lost_total", {"stage": stage}) or 0.0


def attempt_for(org_id: str, subscription_id: str, event_id: str) -> WebhookAttempt:
    return WebhookAttempt(
        id=new_id(), organization_id=org_id, subscription_id=subscription_id,
        phone_number_id=None, event_id=event_id, event_type="call.ended", url="http://x/",
        request_payload="{}", response_status=200, response_body="ok", error_detail=None,
        duration_ms=1, is_replay=False, created_at=T0,
    )  # fmt: skip


@pytest.fixture(params=BACKENDS)
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    async with make_repository(request.param, tmp_path) as repository:
        yield repository


async def test_finishing_after_the_lease_was_taken_over_changes_nothing(repo: Repository) -> None:
    org_id, identity_id, subscription_id = await subscribed(repo, "http://x/", ["call.ended"])
    await repo.add_events([event(org_id, identity_id)])
    (first,) = await repo.claim_due_deliveries(T0, 10, 10, lessee="node-a")
    assert first.leased_until == T0 + timedelta(seconds=10)
    assert await repo.claim_due_deliveries(T0 + timedelta(seconds=9), 10, 10, lessee="node-b") == []
    # node-a stalls past its lease; node-b takes the delivery over and delivers it.
    (second,) = await repo.claim_due_deliveries(T0 + timedelta(seconds=11), 10, 10, lessee="node-b")
    assert second.id == first.id
    attempt = attempt_for(org_id, subscription_id, first.event.id)
    assert await repo.finish_delivery(
        second.id, attempt, state="delivered", next_attempt_at=None, lessee="node-b"
    )
    late = attempt_for(org_id, subscription_id, first.event.id)
    retry_at = T0 + timedelta(minutes=5)
    # node-a's late answer (a failure, say) neither reopens nor reschedules it.
    assert not await repo.finish_delivery(
        first.id, late, state="pending", next_attempt_at=retry_at, lessee="node-a"
    )
    assert await repo.pending_deliveries() == 0
    assert len(await repo.list_attempts(org_id)) == 2  # both requests were made: both logged
    assert await repo.claim_due_deliveries(retry_at, 10, 10, lessee="node-a") == []


async def test_a_worker_sends_only_while_its_lease_covers_the_request(repo: Repository) -> None:
    org_id, identity_id, _ = await subscribed(repo, "http://127.0.0.1:9/hook", ["call.ended"])
    await repo.add_events([event(org_id, identity_id)])
    clock = Clock()
    before = lost_leases("before_send")
    async with aiohttp.ClientSession() as session:
        outbox = worker(repo, session, clock, lease_seconds=10, timeout_seconds=2)
        (due,) = await repo.claim_due_deliveries(T0, 10, 10, lessee=outbox.lessee)
        clock.now = T0 + timedelta(seconds=8.5)  # a 2 s request would outlast the lease
        await outbox.deliver(due)
    assert lost_leases("before_send") == before + 1
    assert await repo.list_attempts(org_id) == []  # nothing was sent, nothing logged
    assert await repo.pending_deliveries() == 1  # left for whoever claims it next
    assert len(await repo.claim_due_deliveries(T0 + timedelta(seconds=10), 10, 10)) == 1


def test_a_request_longer_than_the_lease_is_refused() -> None:
    with pytest.raises(ValueError, match="fit in its lease"):
        worker(None, None, Clock(), lease_seconds=5, timeout_seconds=5)  # type: ignore[arg-type]


@dataclass
class Receiver:
    """Answers 200 and records (event id, sender, time); requests from ``held`` wait."""

    url: str = ""
    received: list[tuple[str, str, float]] = field(default_factory=list)
    held: str | None = None
    held_ids: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        sender = request.headers.get("X-Node", "")
        if sender == self.held:
            self.held_ids.append(body["id"])
            await asyncio.wait_for(self.release.wait(), 60)  # its sender is gone by then
            return web.Response(status=503)
        self.received.append((body["id"], sender, time.monotonic()))
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving_hook(receiver.handle) as receiver.url:
        try:
            yield receiver
        finally:
            receiver.release.set()  # held requests answer before the server goes


@dataclass
class TwoNodes:
    """Two repositories on one PostgreSQL schema, each with a pool of its own."""

    a: PostgresRepository
    b: PostgresRepository


@pytest.fixture
async def two_nodes() -> AsyncIterator[TwoNodes]:
    url = await postgres_test_url()
    async with postgres_schema() as schema:
        a = await PostgresRepository.open(url, search_path=schema, max_size=4)
        b = await PostgresRepository.open(url, search_path=schema, max_size=4)
        try:
            await a.migrate()
            await b.migrate()  # concurrent-safe and idempotent: applies nothing
            yield TwoNodes(a, b)
        finally:
            await a.close()
            await b.close()


async def many_events(repo: Repository, url: str, count: int) -> set[str]:
    org_id, identity_id, _ = await subscribed(repo, url, ["call.ended"])
    events = [
        EventDraft(
            "call.ended", org_id, {"n": n}, agent_identity_id=identity_id, created_at=utcnow()
        )
        for n in range(count)
    ]
    await repo.add_events(events)
    return {e.id for e in events}


def node_worker(repo: Repository, session: aiohttp.ClientSession, **options: Any) -> Any:
    return worker(repo, session, utcnow, **options)  # type: ignore[arg-type]


async def test_two_nodes_draining_one_outbox_send_each_delivery_once(
    two_nodes: TwoNodes, receiver: Receiver
) -> None:
    ids = await many_events(two_nodes.a, receiver.url, 120)

    async def drain(repo: Repository, name: str) -> int:
        claimed = 0
        async with aiohttp.ClientSession(headers={"X-Node": name}) as session:
            outbox = node_worker(repo, session, batch_size=7, lease_seconds=30, timeout_seconds=5)
            while handled := await outbox.run_once():
                claimed += handled
        return claimed

    claimed_a, claimed_b = await asyncio.gather(drain(two_nodes.a, "a"), drain(two_nodes.b, "b"))
    got = [event_id for event_id, _, _ in receiver.received]
    assert sorted(got) == sorted(ids)  # every delivery sent, none twice
    assert claimed_a + claimed_b == len(ids)
    assert claimed_a > 0 and claimed_b > 0  # both took part
    assert await two_nodes.b.pending_deliveries() == 0


async def test_a_node_killed_mid_batch_leaves_its_leases_to_the_survivor(
    two_nodes: TwoNodes, receiver: Receiver
) -> None:
    lease = 4.0
    ids = await many_events(two_nodes.a, receiver.url, 40)
    receiver.held = "a"
    async with (
        aiohttp.ClientSession(headers={"X-Node": "a"}) as session_a,
        aiohttp.ClientSession(headers={"X-Node": "b"}) as session_b,
    ):
        options: dict[str, Any] = {"lease_seconds": lease, "timeout_seconds": 2,
                                   "per_destination": 20}  # fmt: skip
        node_a = node_worker(two_nodes.a, session_a, batch_size=20, **options)
        node_b = node_worker(two_nodes.b, session_b, batch_size=100, **options)
        claimed_at = time.monotonic()
        dying = asyncio.create_task(node_a.run_once())
        for _ in range(200):  # node a's whole batch is on the wire
            if len(receiver.held_ids) == 20:
                break
            await asyncio.sleep(0.025)
        assert len(receiver.held_ids) == 20
        dying.cancel()  # killed mid-batch: nothing finished, its leases stay
        with pytest.raises(asyncio.CancelledError):
            await dying
        assert await node_b.run_once() == 20  # the rest; a's rows stay hidden while leased
        assert await node_b.run_once() == 0
        await asyncio.sleep(claimed_at + lease + 0.1 - time.monotonic())
        assert await node_b.run_once() == 20  # a's leases expired: taken over
    got = [event_id for event_id, _, _ in receiver.received]
    assert sorted(got) == sorted(ids)  # all delivered, each once
    assert {sender for _, sender, _ in receiver.received} == {"b"}
    taken_over = [at for event_id, _, at in receiver.received if event_id in receiver.held_ids]
    assert len(taken_over) == 20 and min(taken_over) >= claimed_at + lease  # none within a lease
    assert await two_nodes.a.pending_deliveries() == 0


async def test_a_worker_that_stops_hands_its_leases_back(repo: Repository) -> None:
    org_id, identity_id, _ = await subscribed(repo, "http://127.0.0.1:9/hook", ["call.ended"])
    await repo.add_events([event(org_id, identity_id), event(org_id, identity_id)])
    async with aiohttp.ClientSession() as session:
        outbox = worker(repo, session, Clock())
        assert len(await repo.claim_due_deliveries(T0, 10, 60, lessee=outbox.lessee)) == 2
        assert await repo.claim_due_deliveries(T0, 10, 60, lessee="other") == []
        assert await outbox.release_leases() == 2
    assert len(await repo.claim_due_deliveries(T0, 10, 60, lessee="other")) == 2  # at once
