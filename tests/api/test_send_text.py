"""Sending SMS: locally between numbers on this server, or through Telnyx's messaging API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from tests.api.conftest import ApiWorld
from tests.fakes.telnyx_api import FakeTelnyx
from trunkline.messaging.outbound import TelnyxMessagingClient
from trunkline.storage.models import Text, new_id, utcnow

API_KEY = "KEY-messaging-test"


async def test_local_text_arrives_on_the_other_number(api: ApiWorld) -> None:
    org = await api.org()
    sender = await api.provision(org, "sales")
    receiver = await api.provision(org, "support")
    sent = await org.admin.post(
        f"/numbers/{sender['id']}/texts", {"to": receiver["number"], "text": "ping"}
    )
    assert sent.status == 201, sent
    assert (sent.body["direction"], sent.body["text"], sent.body["is_read"]) == (
        "outbound",
        "ping",
        True,
    )
    inbox = await org.admin.get(f"/numbers/{receiver['id']}/texts")
    assert [(t["direction"], t["text"], t["remote_phone_number"]) for t in inbox.body] == [
        ("inbound", "ping", sender["number"])
    ]
    stored = await api.repository.get_text(sender["id"], sent.body["id"])
    assert stored is not None and stored.delivery_status == "delivered"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"to": "4155550100", "text": "x"}, 422),
        ({"to": "+14155550100", "text": "   "}, 422),
        ({"to": "+14155550100", "text": "x" * 1601}, 422),
        ({"to": "+14155550100"}, 422),
        ({"to": "+14155550100", "text": "x", "media": []}, 422),
    ],
)
async def test_invalid_sends_are_422(api: ApiWorld, body: dict[str, str], status: int) -> None:
    org = await api.org()
    number = await api.provision(org)
    answer = await org.admin.post(f"/numbers/{number['id']}/texts", body)
    assert answer.status == status and "detail" in answer.body


async def test_more_than_100_recipients_a_day_is_sender_rate_limited(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    stored = await api.repository.get_number(number["id"])
    assert stored is not None
    recent = utcnow() - timedelta(hours=1)
    for index in range(100):
        await api.repository.insert_text(
            Text(
                id=new_id(),
                organization_id=org.id,
                phone_number_id=stored.id,
                direction="outbound",
                local_phone_number=stored.number,
                remote_phone_number=f"+1415555{index:04d}",
                text="hi",
                type="sms",
                media=None,
                status="active",
                is_read=True,
                created_at=recent,
                updated_at=recent,
            )
        )
    path = f"/numbers/{number['id']}/texts"
    refused = await org.admin.post(path, {"to": "+14155559999", "text": "new person"})
    assert refused.status == 429 and refused.body["detail"].startswith("sender_rate_limited")
    assert refused.headers.get("Retry-After")
    again = await org.admin.post(path, {"to": "+14155550007", "text": "existing recipient"})
    assert again.status == 201


@pytest.fixture
async def telnyx(api: ApiWorld) -> AsyncIterator[FakeTelnyx]:
    fake = FakeTelnyx(api_key=API_KEY)
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    async with aiohttp.ClientSession() as session:
        api.text_sender.target = TelnyxMessagingClient(
            f"http://127.0.0.1:{runner.addresses[0][1]}", API_KEY, session
        )
        try:
            yield fake
        finally:
            await runner.cleanup()


async def test_texts_go_out_through_telnyx(api: ApiWorld, telnyx: FakeTelnyx) -> None:
    org = await api.org()
    number = await api.provision(org)
    sent = await org.admin.post(
        f"/numbers/{number['id']}/texts", {"to": "+14155550123", "text": "via carrier"}
    )
    assert sent.status == 201, sent
    assert telnyx.messages == [
        {"from": number["number"], "to": "+14155550123", "text": "via carrier"}
    ]
    stored = await api.repository.get_text(number["id"], sent.body["id"])
    assert stored is not None and stored.delivery_status == "queued"
    assert stored.carrier_message_id and stored.carrier_message_id.startswith("telnyx:")


async def test_carrier_refusal_is_502_and_nothing_is_stored(
    api: ApiWorld, telnyx: FakeTelnyx
) -> None:
    org = await api.org()
    number = await api.provision(org)
    telnyx.fail("message", 422, "Invalid destination")
    answer = await org.admin.post(
        f"/numbers/{number['id']}/texts", {"to": "+14155550123", "text": "x"}
    )
    assert answer.status == 502 and "Invalid destination" in answer.body["detail"]
    assert (await org.admin.get(f"/numbers/{number['id']}/texts")).body == []
