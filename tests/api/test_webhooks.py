"""Webhook subscriptions and the delivery log, through the Inkbox SDK and raw HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from inkbox import Inkbox
from inkbox.exceptions import InkboxAPIError

from tests.api.conftest import ApiWorld
from trunkline.storage.models import EventDraft

T = TypeVar("T")
HOOK = "https://hooks.example.com/trunkline"


async def in_thread(api: ApiWorld, token: str, scenario: Callable[[Inkbox], T]) -> T:
    def run() -> T:
        with Inkbox(api_key=token, base_url=api.base_url) as client:
            return scenario(client)

    return await asyncio.to_thread(run)


@pytest.fixture(autouse=True)
def no_inkbox_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("INKBOX_API_KEY", "INKBOX_BASE_URL", "INKBOX_VAULT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


async def test_sdk_subscription_lifecycle(api: ApiWorld) -> None:
    org = await api.org()
    sales = org.identities["sales"]

    def scenario(client: Inkbox) -> dict[str, Any]:
        subscriptions = client.webhooks.subscriptions
        created = subscriptions.create(
            url=HOOK, event_types=["call.ended"], agent_identity_id=sales.id, auth_token="tok-1"
        )
        second = subscriptions.create(
            url=HOOK + "/2", event_types=["text.received"], agent_identity_id=sales.id
        )
        listed = subscriptions.list(agent_identity_id=sales.id)
        updated = subscriptions.update(created.id, event_types=["call.ended", "call.started"])
        by_type = subscriptions.list(event_type="call.started")
        subscriptions.delete(second.id)
        with pytest.raises(InkboxAPIError) as gone:
            subscriptions.get(second.id)
        deliveries = client.webhooks.deliveries.list(subscription_id=created.id)
        return {
            "created": created,
            "second": second,
            "listed": listed,
            "updated": updated,
            "by_type": by_type,
            "gone": gone.value.status_code,
            "deliveries": deliveries,
        }

    result = await in_thread(api, org.admin_token, scenario)
    created = result["created"]
    assert created.signing_key and created.signing_key.startswith("whsec_")
    assert result["second"].signing_key is None  # minted once per identity
    assert created.has_auth_token and created.auth_token is None  # write-only
    assert str(created.agent_identity_id) == sales.id == str(created.owner_identity_id)
    assert [s.url for s in result["listed"]] == [HOOK, HOOK + "/2"]
    assert result["updated"].event_types == ["call.ended", "call.started"]
    assert [s.id for s in result["by_type"]] == [created.id]
    assert result["gone"] == 404
    assert result["deliveries"] == []
    stored = await api.repository.get_subscription(str(created.id))
    assert stored is not None and stored.auth_token_encrypted
    assert "tok-1" not in stored.auth_token_encrypted


async def test_the_delivery_auth_token_is_never_echoed(api: ApiWorld) -> None:
    org = await api.org()
    secret = "hook-secret-7f3a9c"
    created = await org.admin.post(
        "/../webhooks/subscriptions",
        {
            "url": HOOK,
            "event_types": ["call.ended"],
            "agent_identity_id": org.identities["sales"].id,
            "auth_token": secret,
        },
    )
    assert created.status == 201, created
    subscription = f"/../webhooks/subscriptions/{created.body['id']}"
    answers = [
        created,
        await org.admin.get("/../webhooks/subscriptions"),
        await org.admin.get(subscription),
        await org.admin.patch(subscription, {"event_types": ["call.ended", "call.started"]}),
        await org.agents["sales"].get(subscription),
    ]
    for answer in answers:
        assert answer.status in (200, 201), answer
        assert secret.encode() not in answer.raw
        document = (
            answer.body["subscriptions"][0] if "subscriptions" in answer.body else answer.body
        )
        assert "auth_token" not in document
        assert document["auth_token_set"] is True and document["has_auth_token"] is True
    cleared = await org.admin.patch(subscription, {"auth_token": None})
    assert (cleared.body["auth_token_set"], cleared.body["has_auth_token"]) == (False, False)
    replaced = await org.admin.patch(subscription, {"auth_token": "another-secret-91b2"})
    assert replaced.body["auth_token_set"] is True
    assert b"another-secret-91b2" not in replaced.raw
    stored = await api.repository.get_subscription(created.body["id"])
    assert stored is not None and stored.auth_token_encrypted
    assert api.secret_box.decrypt(stored.auth_token_encrypted) == "another-secret-91b2"


async def test_events_fan_out_only_to_matching_subscriptions(api: ApiWorld) -> None:
    org = await api.org()
    sales, support = org.identities["sales"], org.identities["support"]
    number = await api.provision(org, "sales")
    by_identity = await org.admin.post(
        "/../webhooks/subscriptions",
        {"url": HOOK, "event_types": ["call.ended"], "agent_identity_id": sales.id},
    )
    assert by_identity.status == 201, by_identity
    by_number = await org.admin.post(
        "/../webhooks/subscriptions",
        {"url": HOOK + "/n", "event_types": ["text.received"], "phone_number_id": number["id"]},
    )
    assert by_number.status == 201 and by_number.body["owner_identity_id"] == sales.id
    await api.repository.add_events(
        [
            EventDraft("call.ended", org.id, {}, number["id"], sales.id),
            EventDraft("text.received", org.id, {}, number["id"], sales.id),
            EventDraft("call.ended", org.id, {}, None, support.id),
        ]
    )
    assert await api.repository.pending_deliveries() == 2


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"url": HOOK, "event_types": ["call.ended"]}, "Exactly one of"),
        ({"url": "http://hooks.example.com/x", "event_types": ["call.ended"]}, "url: must be"),
        ({"url": HOOK, "event_types": ["phone.incoming_call"]}, "incoming-call action"),
        ({"url": HOOK, "event_types": ["call.ended", "call.ended"]}, "must not repeat"),
        ({"url": HOOK, "event_types": ["mail.received"]}, "unknown event type"),
        ({"url": HOOK, "event_types": []}, "event_types"),
    ],
)
async def test_invalid_subscriptions_are_422(
    api: ApiWorld, body: dict[str, Any], detail: str
) -> None:
    org = await api.org()
    if "Exactly one" not in detail:
        body = {**body, "agent_identity_id": org.identities["sales"].id}
    answer = await org.admin.post("/../webhooks/subscriptions", body)
    assert answer.status == 422 and detail in answer.body["detail"], answer


async def test_identity_tokens_and_other_orgs_cannot_reach_subscriptions(api: ApiWorld) -> None:
    org = await api.org()
    other = await api.org("globex")
    created = await org.admin.post(
        "/../webhooks/subscriptions",
        {
            "url": HOOK,
            "event_types": ["call.ended"],
            "agent_identity_id": org.identities["sales"].id,
        },
    )
    path = f"/../webhooks/subscriptions/{created.body['id']}"
    assert (await org.agents["sales"].get(path)).status == 200
    for client in (org.agents["support"], other.admin, other.agents["sales"]):
        assert (await client.get(path)).status == 404
        assert (await client.patch(path, {"url": HOOK + "/x"})).status == 404
        assert (await client.delete(path)).status == 404
    foreign = await other.admin.get("/../webhooks/subscriptions")
    assert foreign.status == 200 and foreign.body == {"subscriptions": []}
    named = await org.agents["support"].post(
        "/../webhooks/subscriptions",
        {
            "url": HOOK,
            "event_types": ["call.ended"],
            "agent_identity_id": org.identities["sales"].id,
        },
    )
    assert named.status == 403
    assert (await org.agents["sales"].get("/../webhooks/deliveries")).status == 422
