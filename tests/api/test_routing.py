"""Inbound-call precedence: number setting, identity config, fallback, voicemail."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.api.conftest import ApiWorld
from trunkline.calls.routing import load_inbound_route, resolve_inbound_route
from trunkline.storage.models import (
    InboundRouting,
    IncomingCallAction,
    IncomingCallConfig,
    PhoneNumber,
    utcnow,
)

OWNER = "11111111-1111-4111-8111-111111111111"
FALLBACK = "22222222-2222-4222-8222-222222222222"
NUMBER_WS = "wss://number.example.com/ws"
NUMBER_HOOK = "https://number.example.com/hook"
IDENTITY_WS = "wss://identity.example.com/ws"
FALLBACK_WS = "wss://fallback.example.com/ws"


def number(action: IncomingCallAction = "auto_reject", **changes: Any) -> PhoneNumber:
    now = utcnow()
    base = PhoneNumber(
        id="33333333-3333-4333-8333-333333333333",
        organization_id="44444444-4444-4444-8444-444444444444",
        number="+15550100000",
        type="local",
        status="active",
        incoming_call_action=action,
        client_websocket_url=NUMBER_WS if action == "auto_accept" else None,
        incoming_call_webhook_url=NUMBER_HOOK if action == "webhook" else None,
        agent_identity_id=OWNER,
        state=None,
        country="US",
        created_at=now,
        updated_at=now,
    )
    return replace(base, **changes)


def config(
    identity: str, action: IncomingCallAction, websocket: str | None = None, hook: str | None = None
) -> IncomingCallConfig:
    now = utcnow()
    return IncomingCallConfig(identity, action, websocket, hook, now, now)


def test_new_number_without_identity_config_rejects() -> None:
    route = resolve_inbound_route(number(), None)
    assert (route.action, route.targets, route.rejects, route.source) == (
        "auto_reject",
        (),
        True,
        "default",
    )


def test_identity_config_applies_to_a_number_left_at_the_default() -> None:
    route = resolve_inbound_route(number(), config(OWNER, "auto_accept", IDENTITY_WS))
    assert route.action == "auto_accept" and route.source == "identity"
    (target,) = route.targets
    assert (target.client_websocket_url, target.agent_identity_id) == (IDENTITY_WS, OWNER)


def test_number_that_accepts_wins_over_identity_config() -> None:
    identity = config(OWNER, "webhook", hook="https://identity.example.com/hook")
    accept = resolve_inbound_route(number("auto_accept"), identity)
    assert (accept.action, accept.source) == ("auto_accept", "number")
    assert accept.targets[0].client_websocket_url == NUMBER_WS
    webhook = resolve_inbound_route(number("webhook"), config(OWNER, "auto_reject"))
    assert (webhook.action, webhook.targets[0].incoming_call_webhook_url) == (
        "webhook",
        NUMBER_HOOK,
    )


def test_identity_config_that_rejects_rejects() -> None:
    route = resolve_inbound_route(number(), config(OWNER, "auto_reject"))
    assert route.rejects and route.source == "identity"


def test_paused_number_rejects_whatever_is_configured() -> None:
    route = resolve_inbound_route(
        number("auto_accept", status="paused"), config(OWNER, "auto_accept", IDENTITY_WS)
    )
    assert route.rejects


def test_fallback_agent_follows_the_primary() -> None:
    routing = InboundRouting(agent_id=None, fallback_agent_id=FALLBACK)
    route = resolve_inbound_route(
        number("auto_accept", inbound_routing=routing),
        None,
        fallback_config=config(FALLBACK, "auto_accept", FALLBACK_WS),
    )
    assert [t.client_websocket_url for t in route.targets] == [NUMBER_WS, FALLBACK_WS]
    assert route.targets[1].agent_identity_id == FALLBACK


def test_fallback_takes_calls_the_primary_would_reject() -> None:
    routing = InboundRouting(fallback_agent_id=FALLBACK)
    route = resolve_inbound_route(
        number(inbound_routing=routing),
        config(OWNER, "auto_reject"),
        fallback_config=config(FALLBACK, "auto_accept", FALLBACK_WS),
    )
    assert route.action == "auto_reject"
    assert [t.agent_identity_id for t in route.targets] == [FALLBACK]
    assert not route.rejects


def test_voicemail_when_no_agent_takes_the_call() -> None:
    routing = InboundRouting(fallback_agent_id=FALLBACK, voicemail_message="Leave a message")
    route = resolve_inbound_route(
        number(inbound_routing=routing), None, fallback_config=config(FALLBACK, "auto_reject")
    )
    assert route.targets == ()
    assert route.voicemail_message == "Leave a message"
    assert not route.rejects


def test_routing_agent_overrides_the_owner_as_primary() -> None:
    routing = InboundRouting(agent_id=FALLBACK)
    route = resolve_inbound_route(number("auto_accept", inbound_routing=routing), None)
    assert route.targets[0].agent_identity_id == FALLBACK


async def test_load_inbound_route_reads_primary_and_fallback_configs(api: ApiWorld) -> None:
    org = await api.org()
    sales, support = org.identities["sales"], org.identities["support"]
    answer = await org.admin.post(
        "/numbers/register",
        {
            "phone_number": "+15739693824",
            "provider": "twilio",
            "agent_id": "sales",
            "provider_config": {"trunk_address": "sip.example.com"},
            "inbound_routing": {"fallback": {"agent_id": "support"}, "voicemail_message": "Bye"},
        },
    )
    assert answer.status == 201, answer
    await org.admin.put(
        "/incoming-call-action",
        {
            "incoming_call_action": "webhook",
            "agent_identity_id": sales.id,
            "incoming_call_webhook_url": "https://sales.example.com/hook",
        },
    )
    await org.admin.put(
        "/incoming-call-action",
        {
            "incoming_call_action": "auto_accept",
            "agent_identity_id": support.id,
            "client_websocket_url": "wss://support.example.com/ws",
        },
    )
    stored = await api.repository.find_active_number("+15739693824")
    assert stored is not None
    route = await load_inbound_route(api.repository, stored)
    assert [(t.action, t.agent_identity_id) for t in route.targets] == [
        ("webhook", sales.id),
        ("auto_accept", support.id),
    ]
    assert route.voicemail_message == "Bye"
