"""Per-identity inbound-call configuration (seed 002): exact statuses and messages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ApiWorld

WSS = "wss://agent.example.com/ws"
HOOK = "https://agent.example.com/hook"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def test_admin_sets_and_reads_an_identity_config(api: ApiWorld) -> None:
    org = await api.org()
    sales = org.identities["sales"].id
    answer = await org.admin.put(
        "/incoming-call-action",
        {
            "incoming_call_action": "auto_accept",
            "agent_identity_id": sales,
            "client_websocket_url": WSS,
        },
    )
    assert answer.status == 200, answer
    assert answer.body == {
        "agent_identity_id": sales,
        "incoming_call_action": "auto_accept",
        "client_websocket_url": WSS,
        "incoming_call_webhook_url": None,
    }
    got = await org.admin.get("/incoming-call-action", params={"agent_identity_id": sales})
    assert (got.status, got.body) == (200, answer.body)


async def test_put_replaces_the_whole_config(api: ApiWorld) -> None:
    org = await api.org()
    sales = org.identities["sales"].id
    await org.admin.put(
        "/incoming-call-action",
        {
            "incoming_call_action": "webhook",
            "agent_identity_id": sales,
            "incoming_call_webhook_url": HOOK,
            "client_websocket_url": WSS,
        },
    )
    answer = await org.admin.put(
        "/incoming-call-action", {"incoming_call_action": "auto_reject", "agent_identity_id": sales}
    )
    assert answer.body["incoming_call_action"] == "auto_reject"
    assert answer.body["client_websocket_url"] is None
    assert answer.body["incoming_call_webhook_url"] is None


async def test_identity_token_uses_its_own_identity(api: ApiWorld) -> None:
    org = await api.org()
    agent = org.agents["sales"]
    answer = await agent.put("/incoming-call-action", {"incoming_call_action": "auto_reject"})
    assert answer.status == 200, answer
    assert answer.body["agent_identity_id"] == org.identities["sales"].id
    got = await agent.get("/incoming-call-action")
    assert got.status == 200 and got.body == answer.body
    named_self = await agent.get(
        "/incoming-call-action", params={"agent_identity_id": org.identities["sales"].id}
    )
    assert named_self.status == 200


async def test_identity_token_naming_another_identity_is_403(api: ApiWorld) -> None:
    org = await api.org()
    other = org.identities["support"].id
    put = await org.agents["sales"].put(
        "/incoming-call-action", {"incoming_call_action": "auto_reject", "agent_identity_id": other}
    )
    get = await org.agents["sales"].get(
        "/incoming-call-action", params={"agent_identity_id": other}
    )
    assert (put.status, get.status) == (403, 403)


async def test_admin_must_name_the_identity(api: ApiWorld) -> None:
    org = await api.org()
    put = await org.admin.put("/incoming-call-action", {"incoming_call_action": "auto_reject"})
    get = await org.admin.get("/incoming-call-action")
    assert (put.status, put.body) == (422, {"detail": "agent_identity_id is required"})
    assert (get.status, get.body) == (422, {"detail": "agent_identity_id is required"})
    null = await org.admin.put(
        "/incoming-call-action", {"incoming_call_action": "auto_reject", "agent_identity_id": None}
    )
    assert null.status == 422


async def test_unknown_identity_is_404(api: ApiWorld) -> None:
    org = await api.org()
    put = await org.admin.put(
        "/incoming-call-action",
        {"incoming_call_action": "auto_reject", "agent_identity_id": UNKNOWN_ID},
    )
    get = await org.admin.get("/incoming-call-action", params={"agent_identity_id": UNKNOWN_ID})
    assert (put.status, put.body) == (404, {"detail": "Agent identity not found"})
    assert (get.status, get.body) == (404, {"detail": "Agent identity not found"})


async def test_no_config_set_is_404(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.get(
        "/incoming-call-action", params={"agent_identity_id": org.identities["sales"].id}
    )
    assert (answer.status, answer.body) == (
        404,
        {"detail": "No inbound-call config set for this identity"},
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"incoming_call_action": "auto_accept"},
            'client_websocket_url is required when incoming_call_action is "auto_accept"',
        ),
        (
            {"incoming_call_action": "webhook"},
            'incoming_call_webhook_url is required when incoming_call_action is "webhook"',
        ),
        (
            {
                "incoming_call_action": "auto_accept",
                "client_websocket_url": "https://a.example.com",
            },
            "client_websocket_url: must be a wss:// URL",
        ),
        (
            {"incoming_call_action": "webhook", "incoming_call_webhook_url": "wss://a.example.com"},
            "incoming_call_webhook_url: must be a https:// URL",
        ),
        (
            {
                "incoming_call_action": "webhook",
                "incoming_call_webhook_url": "https://2130706433/hook",
            },
            "incoming_call_webhook_url: a numeric host must be a dotted-quad IPv4 address",
        ),
        (
            {
                "incoming_call_action": "webhook",
                "incoming_call_webhook_url": "https://[::127.0.0.1]/hook",
            },
            "incoming_call_webhook_url: private, loopback and link-local hosts are not allowed",
        ),
        (
            {
                "incoming_call_action": "auto_accept",
                "client_websocket_url": "wss://[64:ff9b::a9fe:a9fe]/ws",
            },
            "client_websocket_url: private, loopback and link-local hosts are not allowed",
        ),
        ({"incoming_call_action": "hosted_agent"}, "incoming_call_action: must be one of"),
        ({}, "incoming_call_action is required"),
    ],
)
async def test_put_validation_messages(api: ApiWorld, body: dict[str, Any], detail: str) -> None:
    org = await api.org()
    answer = await org.admin.put(
        "/incoming-call-action", {**body, "agent_identity_id": org.identities["sales"].id}
    )
    assert answer.status == 422, answer
    assert answer.body["detail"].startswith(detail)


async def test_malformed_identity_query_is_422(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.get("/incoming-call-action", params={"agent_identity_id": "a b"})
    assert answer.status == 422
    assert answer.body["detail"] == "agent_identity_id: must be an agent identity id or handle"
    unknown = await org.admin.get("/incoming-call-action", params={"agent_identity_id": "abc"})
    assert (unknown.status, unknown.body) == (404, {"detail": "Agent identity not found"})


async def test_identity_named_by_handle_as_register_takes_it(api: ApiWorld) -> None:
    org = await api.org()
    sales = org.identities["sales"].id
    for reference in ("sales", "@sales"):
        put = await org.admin.put(
            "/incoming-call-action",
            {
                "incoming_call_action": "auto_accept",
                "agent_identity_id": reference,
                "client_websocket_url": "wss://agent.example.com/ws",
            },
        )
        assert put.status == 200, put
        assert put.body["agent_identity_id"] == sales  # stored and answered as the id
        got = await org.admin.get("/incoming-call-action", params={"agent_identity_id": reference})
        assert (got.status, got.body) == (200, put.body)
    own = await org.agents["sales"].put(
        "/incoming-call-action",
        {"incoming_call_action": "auto_reject", "agent_identity_id": "@sales"},
    )
    assert own.status == 200 and own.body["agent_identity_id"] == sales
    sibling = await org.agents["sales"].put(
        "/incoming-call-action",
        {"incoming_call_action": "auto_reject", "agent_identity_id": "support"},
    )
    nobody = await org.agents["sales"].put(
        "/incoming-call-action",
        {"incoming_call_action": "auto_reject", "agent_identity_id": "ghost"},
    )
    assert (sibling.status, nobody.status) == (403, 403)  # a sibling's handle is not discoverable
    missing = await org.admin.put(
        "/incoming-call-action",
        {"incoming_call_action": "auto_reject", "agent_identity_id": "ghost"},
    )
    assert (missing.status, missing.body) == (404, {"detail": "Agent identity not found"})
