"""The official Inkbox Python SDK, pointed at a trunkline server, works unchanged for phone resources.

The SDK is synchronous (httpx), so each scenario runs in a worker thread
while the server keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import pytest
from inkbox import Inkbox
from inkbox.exceptions import InkboxAPIError

from tests.api.conftest import ApiWorld, ScriptedCallControl

T = TypeVar("T")
WSS = "wss://agent.example.com/ws"


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


async def test_sdk_phone_numbers_lifecycle(api: ApiWorld) -> None:
    org = await api.org()

    def scenario(client: Inkbox) -> dict[str, Any]:
        numbers = client.phone_numbers
        provisioned = numbers.provision(agent_handle="sales", state="NY")
        listed = numbers.list()
        fetched = numbers.get(provisioned.id)
        updated = numbers.update(
            provisioned.id, incoming_call_action="auto_accept", client_websocket_url=WSS
        )
        cleared = numbers.update(provisioned.id, incoming_call_webhook_url=None)
        numbers.release(provisioned.id)
        released = numbers.get(provisioned.id)
        with pytest.raises(InkboxAPIError) as missing:
            numbers.get("00000000-0000-4000-8000-000000000000")
        return {
            "provisioned": provisioned,
            "listed": listed,
            "fetched": fetched,
            "updated": updated,
            "cleared": cleared,
            "released": released,
            "missing": missing.value,
        }

    result = await in_thread(api, org.admin_token, scenario)
    provisioned = result["provisioned"]
    assert provisioned.type == "local" and provisioned.state == "NY"
    assert provisioned.number.startswith("+1212")
    assert provisioned.incoming_call_action == "auto_reject"
    assert provisioned.agent_identity_id == UUID(org.identities["sales"].id)
    assert [n.id for n in result["listed"]] == [provisioned.id]
    assert result["fetched"].number == provisioned.number
    assert result["updated"].incoming_call_action == "auto_accept"
    assert result["updated"].client_websocket_url == WSS
    assert result["cleared"].incoming_call_webhook_url is None
    assert result["released"].status == "released"
    assert result["missing"].status_code == 404
    assert result["missing"].detail == "Phone number not found"


@pytest.mark.settings(max_numbers_per_org=1)
async def test_sdk_cap_and_validation_errors_surface_status_and_detail(api: ApiWorld) -> None:
    org = await api.org()

    def scenario(client: Inkbox) -> tuple[InkboxAPIError, InkboxAPIError]:
        client.phone_numbers.provision(agent_handle="sales")
        with pytest.raises(InkboxAPIError) as cap:
            client.phone_numbers.provision(agent_handle="sales")
        number = client.phone_numbers.list()[0]
        with pytest.raises(InkboxAPIError) as invalid:
            client.phone_numbers.update(number.id, incoming_call_action="webhook")
        return cap.value, invalid.value

    cap, invalid = await in_thread(api, org.admin_token, scenario)
    assert cap.status_code == 429 and cap.retry_after_seconds == 60
    assert invalid.status_code == 422
    assert (
        invalid.detail
        == 'incoming_call_webhook_url is required when incoming_call_action is "webhook"'
    )


async def test_sdk_incoming_call_action(api: ApiWorld) -> None:
    org = await api.org()
    sales_id = org.identities["sales"].id

    def as_agent(client: Inkbox) -> Any:
        set_config = client.incoming_call_action.set(
            incoming_call_action="auto_accept", client_websocket_url=WSS
        )
        return set_config, client.incoming_call_action.get()

    def as_admin(client: Inkbox) -> Any:
        with pytest.raises(InkboxAPIError) as required:
            client.incoming_call_action.get()
        return required.value, client.incoming_call_action.get(agent_identity_id=sales_id)

    set_config, got = await in_thread(api, org.agent_tokens["sales"], as_agent)
    assert set_config.agent_identity_id == UUID(sales_id)
    assert set_config.incoming_call_action == "auto_accept"
    assert got.client_websocket_url == WSS
    required, admin_view = await in_thread(api, org.admin_token, as_admin)
    assert (required.status_code, required.detail) == (422, "agent_identity_id is required")
    assert admin_view.client_websocket_url == WSS


async def test_sdk_calls_and_transcripts(api: ApiWorld) -> None:
    control = ScriptedCallControl(api.repository)
    api.call_control.current = control
    org = await api.org()
    number = await api.provision(org, incoming_call_action="auto_accept", client_websocket_url=WSS)
    answered = await api.add_call(number, status="answered")
    await api.add_segment(answered, "remote", "I need a refund for my order", 0)
    await api.add_segment(answered, "local", "Let me look up the refund", 1200)

    def scenario(client: Inkbox) -> dict[str, Any]:
        placed = client.calls.place(to_number="+14155550199", from_number=number["number"])
        listed = client.calls.list()
        fetched = client.calls.get(answered.id)
        transcripts = client.calls.transcripts(answered.id)
        found = client.phone_numbers.search_transcripts(number["id"], q="refund", party="remote")
        ended = client.calls.hangup(answered.id)
        with pytest.raises(InkboxAPIError) as again:
            client.calls.hangup(answered.id)
        return {
            "placed": placed,
            "listed": listed,
            "fetched": fetched,
            "transcripts": transcripts,
            "found": found,
            "ended": ended,
            "again": again.value,
        }

    result = await in_thread(api, org.admin_token, scenario)
    placed = result["placed"]
    assert (placed.direction, placed.status) == ("outbound", "ringing")
    assert placed.rate_limit.calls_used == 1
    assert {c.id for c in result["listed"]} == {placed.id, UUID(answered.id)}
    assert result["fetched"].status == "answered"
    assert [t.seq for t in result["transcripts"]] == [0, 1]
    assert [t.text for t in result["found"]] == ["I need a refund for my order"]
    assert (result["ended"].status, result["ended"].hangup_reason) == ("completed", "local")
    assert result["again"].status_code == 409
    assert control.hung_up == [answered.id]


async def test_sdk_texts(api: ApiWorld) -> None:
    org = await api.org()
    number = await api.provision(org)
    first = await api.add_text(number, "+14155550101", "first message about shipping")
    await api.add_text(number, "+14155550101", "second message")
    await api.add_text(number, "76934", "Your code is 4242")

    def scenario(client: Inkbox) -> dict[str, Any]:
        texts = client.texts
        return {
            "listed": texts.list(number["id"]),
            "unread": texts.list(number["id"], is_read=False),
            "got": texts.get(number["id"], first.id),
            "updated": texts.update(number["id"], first.id, is_read=True),
            "search": texts.search(number["id"], q="shipping"),
            "conversations": texts.list_conversations(number["id"]),
            "conversation": texts.get_conversation(number["id"], "+14155550101"),
            "bulk": texts.update_conversation(number["id"], "+14155550101", is_read=True),
        }

    result = await in_thread(api, org.agent_tokens["sales"], scenario)
    assert len(result["listed"]) == 3 and len(result["unread"]) == 3
    assert result["got"].text == "first message about shipping"
    assert result["updated"].is_read is True
    assert [t.id for t in result["search"]] == [UUID(first.id)]
    rows = {c.remote_phone_number: c for c in result["conversations"]}
    assert (rows["+14155550101"].total_count, rows["+14155550101"].unread_count) == (2, 1)
    assert rows["76934"].latest_text == "Your code is 4242"
    assert len(result["conversation"]) == 2
    assert (result["bulk"].updated_count, result["bulk"].is_read) == (1, True)
