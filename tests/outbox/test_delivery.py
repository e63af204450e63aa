"""Durable webhook delivery against a real HTTP receiver, with a clock the test controls."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.backends import BACKENDS, make_repository
from trunkline.crypto import SecretBox
from trunkline.outbox.schedule import RETRY_DELAYS_SECONDS, decide
from trunkline.outbox.worker import OutboxWorker
from trunkline.storage.models import DueDelivery, EventDraft, WebhookSubscription, new_id
from trunkline.storage.repository import Repository

T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Receiver:
    """A webhook endpoint that answers from a script and records every request."""

    replies: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    hits: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append((request.path, dict(request.headers), await request.read()))
        status, headers = self.replies.pop(0) if self.replies else (200, {})
        return web.Response(status=status, headers=headers, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture(params=BACKENDS)
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    async with make_repository(request.param, tmp_path) as repository:
        yield repository


async def no_signature(delivery: DueDelivery, body: bytes, timestamp: int) -> None:
    return None


async def subscribed(repo: Repository, url: str, types: list[str]) -> tuple[str, str, str]:
    org = await repo.create_organization("acme")
    identity = await repo.create_identity(org.id, "sales", None)
    subscription = WebhookSubscription(
        id=new_id(),
        organization_id=org.id,
        agent_identity_id=identity.id,
        phone_number_id=None,
        url=url,
        event_types=types,
        status="active",
        created_at=T0,
        updated_at=T0,
    )
    await repo.create_subscription(subscription)
    return org.id, identity.id, subscription.id


def event(org_id: str, identity_id: str, event_type: str = "call.ended") -> EventDraft:
    return EventDraft(
        event_type, org_id, {"id": "call-1", "n": 1}, agent_identity_id=identity_id, created_at=T0
    )


def worker(
    repo: Repository, session: aiohttp.ClientSession, clock: Clock, **options: Any
) -> OutboxWorker:
    return OutboxWorker(
        repo,
        session,
        signer=no_signature,
        secret_box=SecretBox(b"k" * 32),
        clock=clock,
        rng=random.Random(1),
        allow_private=True,
        **options,
    )


async def test_schedule_follows_replies_with_one_stable_id(
    repo: Repository, receiver: Receiver
) -> None:
    org_id, identity_id, subscription_id = await subscribed(
        repo, f"{receiver.url}/hook", ["call.ended"]
    )
    await repo.add_events([event(org_id, identity_id), event(org_id, identity_id, "text.received")])
    receiver.replies = [
        (500, {}),
        (429, {"Retry-After": "3600"}),
        (302, {"Location": f"{receiver.url}/elsewhere"}),
        (200, {}),
    ]
    clock = Clock()
    expected_rng = random.Random(1)
    async with aiohttp.ClientSession() as session:
        outbox = worker(repo, session, clock)
        assert await outbox.run_once() == 1  # the immediate attempt: 500
        first_retry = decide(0, 500, None, T0, expected_rng).next_attempt_at
        assert first_retry is not None
        assert abs((first_retry - T0).total_seconds() - RETRY_DELAYS_SECONDS[0]) <= 0.5

        clock.now = first_retry - timedelta(milliseconds=1)
        assert await outbox.run_once() == 0  # not due yet
        clock.now = first_retry
        assert await outbox.run_once() == 1  # 429 asking for an hour
        second_retry = decide(1, 429, "3600", clock.now, expected_rng).next_attempt_at
        assert second_retry == first_retry + timedelta(seconds=3600)  # Retry-After beats 5 min

        clock.now = second_retry - timedelta(seconds=1)
        assert await outbox.run_once() == 0
        clock.now = second_retry
        assert await outbox.run_once() == 1  # 302: recorded as a failure, never followed
        third_retry = decide(2, 302, None, clock.now, expected_rng).next_attempt_at
        assert third_retry is not None
        delay = (third_retry - second_retry).total_seconds()
        assert RETRY_DELAYS_SECONDS[2] * 0.9 <= delay <= RETRY_DELAYS_SECONDS[2] * 1.1

        clock.now = third_retry
        assert await outbox.run_once() == 1  # 200
        clock.now = third_retry + timedelta(days=2)
        assert await outbox.run_once() == 0  # delivered: nothing more owed

    assert [path for path, _, _ in receiver.hits] == ["/hook"] * 4  # /elsewhere never fetched
    ids = {json.loads(body)["id"] for _, _, body in receiver.hits}
    assert len(ids) == 1 and next(iter(ids)).startswith("evt_")
    envelope = json.loads(receiver.hits[0][2])
    assert set(envelope) == {"id", "event_type", "timestamp", "data"}
    assert envelope["event_type"] == "call.ended" and envelope["data"]["id"] == "call-1"
    attempts = await repo.list_attempts(org_id, subscription_id=subscription_id)
    assert [a.response_status for a in reversed(attempts)] == [500, 429, 302, 200]
    assert [a.response_status for a in await repo.list_attempts(org_id, success=True)] == [200]
    assert await repo.pending_deliveries() == 0


async def test_410_disables_the_subscription(repo: Repository, receiver: Receiver) -> None:
    org_id, identity_id, subscription_id = await subscribed(
        repo, f"{receiver.url}/gone", ["call.ended", "call.started"]
    )
    await repo.add_events([event(org_id, identity_id), event(org_id, identity_id, "call.started")])
    receiver.replies = [(410, {})]
    async with aiohttp.ClientSession() as session:
        await worker(repo, session, Clock(), max_in_flight=1).run_once()
    subscription = await repo.get_subscription(subscription_id)
    assert subscription is not None and subscription.status == "disabled"
    assert subscription.disabled_reason == "endpoint answered 410 Gone"
    assert len(receiver.hits) == 1  # the second delivery was dropped with the subscription
    assert await repo.pending_deliveries() == 0
    await repo.add_events([event(org_id, identity_id)])
    assert await repo.pending_deliveries() == 0  # disabled subscriptions get nothing new


async def test_a_worker_that_dies_mid_delivery_loses_nothing(
    repo: Repository, receiver: Receiver
) -> None:
    org_id, identity_id, _ = await subscribed(repo, f"{receiver.url}/hook", ["call.ended"])
    await repo.add_events([event(org_id, identity_id)])
    leased = await repo.claim_due_deliveries(T0, 10, lease_seconds=60)
    assert len(leased) == 1  # …and the worker holding the lease dies here
    assert await repo.claim_due_deliveries(T0 + timedelta(seconds=59), 10, 60) == []
    clock = Clock(T0 + timedelta(seconds=61))
    async with aiohttp.ClientSession() as session:
        assert await worker(repo, session, clock).run_once() == 1
    assert len(receiver.hits) == 1
    assert json.loads(receiver.hits[0][2])["id"] == leased[0].event.id
    assert await repo.pending_deliveries() == 0


async def test_only_matching_subscriptions_receive_events(
    repo: Repository, receiver: Receiver
) -> None:
    org_id, identity_id, _ = await subscribed(repo, f"{receiver.url}/hook", ["call.ended"])
    other = await repo.create_identity(org_id, "support", None)
    await repo.add_events(
        [
            event(org_id, identity_id, "text.received"),  # type not subscribed
            event(org_id, other.id),  # another identity
        ]
    )
    assert await repo.pending_deliveries() == 0


async def test_unreachable_endpoint_is_retried_with_the_error_logged(repo: Repository) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    org_id, identity_id, _ = await subscribed(
        repo, f"http://127.0.0.1:{closed_port}/hook", ["call.ended"]
    )
    await repo.add_events([event(org_id, identity_id)])
    async with aiohttp.ClientSession() as session:
        await worker(repo, session, Clock()).run_once()
    (attempt,) = await repo.list_attempts(org_id)
    assert attempt.response_status is None and attempt.error_detail
    assert await repo.pending_deliveries() == 1


def test_retry_after_http_date_and_exhaustion() -> None:
    rng = random.Random(3)
    later = "Tue, 24 Nov 2026 14:00:00 GMT"
    outcome = decide(1, 503, later, T0, rng)
    assert outcome.next_attempt_at == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    assert decide(len(RETRY_DELAYS_SECONDS), 500, None, T0, rng).state == "failed"
    assert decide(0, 204, None, T0, rng).state == "delivered"
    small: Any = decide(3, 503, "1", T0, rng).next_attempt_at
    assert (small - T0).total_seconds() >= RETRY_DELAYS_SECONDS[3] * 0.9  # never sooner
