"""Identity tokens name only their own identity: routing targets, handles, ids.

A sibling identity of the same organisation is refused with 403 exactly like
an identity that does not exist, so an identity token can neither route its
number to a sibling nor learn which sibling handles exist. Admin tokens keep
naming any identity of their organisation.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ApiWorld, Org

TRUNK = {"trunk_address": "sip.example.net"}
GHOST_ID = "99999999-9999-4999-8999-999999999999"


def routing_to(target: str, field: str) -> dict[str, Any]:
    if field == "agent_id":
        return {"inbound_routing": {"agent_id": target}}
    return {"inbound_routing": {"fallback": {"agent_id": target}}}


@pytest.fixture
async def org(api: ApiWorld) -> Org:
    return await api.org("acme", handles=("sales", "support"))


@pytest.mark.parametrize("field", ["agent_id", "fallback"])
async def test_identity_token_cannot_route_its_number_to_a_sibling(
    api: ApiWorld, org: Org, field: str
) -> None:
    number = await api.provision(org, "sales")
    path = f"/numbers/{number['id']}"
    sales = org.agents["sales"]
    sibling = org.identities["support"]
    refusals = []
    for target in ("support", "@support", sibling.id, "ghost", GHOST_ID):
        answer = await sales.patch(path, routing_to(target, field))
        refusals.append((answer.status, answer.body))
    field_name = (
        "inbound_routing.agent_id" if field == "agent_id" else ("inbound_routing.fallback.agent_id")
    )
    expected = {
        "detail": f"Identity-scoped tokens can only name their own agent identity: {field_name}"
    }
    assert refusals == [(403, expected)] * 5
    stored = await api.repository.get_number(number["id"])
    assert stored is not None and stored.inbound_routing is None
    own = await sales.patch(path, routing_to("@sales", field))
    assert own.status == 200, own
    admin = await org.admin.patch(path, routing_to("support", field))
    assert admin.status == 200, admin
    routing = admin.body["inbound_routing"]
    routed = routing["agent_id"] if field == "agent_id" else routing["fallback"]["agent_id"]
    assert routed == sibling.id


async def test_identity_token_cannot_register_a_number_routed_to_a_sibling(
    api: ApiWorld, org: Org
) -> None:
    body = {
        "phone_number": "+15739693824",
        "provider": "telnyx",
        "agent_id": "sales",
        "provider_config": TRUNK,
        "inbound_routing": {"agent_id": "sales", "fallback": {"agent_id": "support"}},
    }
    refused = await org.agents["sales"].post("/numbers/register", body)
    assert refused.status == 403, refused
    assert "inbound_routing.fallback.agent_id" in refused.body["detail"]
    assert await api.repository.list_numbers(org.id) == []
    allowed = await org.admin.post("/numbers/register", body)
    assert allowed.status == 201, allowed


async def test_sibling_and_unknown_handles_look_the_same_to_an_identity_token(
    api: ApiWorld, org: Org
) -> None:
    sales = org.agents["sales"]
    sibling = await sales.post("/numbers", {"agent_handle": "support"})
    ghost = await sales.post("/numbers", {"agent_handle": "ghost"})
    assert (sibling.status, ghost.status) == (403, 403)
    assert sibling.body == ghost.body
    register = {"phone_number": "+15739693824", "provider": "telnyx", "provider_config": TRUNK}
    sibling = await sales.post("/numbers/register", {**register, "agent_id": "@support"})
    ghost = await sales.post("/numbers/register", {**register, "agent_id": "@ghost"})
    assert (sibling.status, ghost.status) == (403, 403)
    assert sibling.body == ghost.body
    admin_ghost = await org.admin.post("/numbers", {"agent_handle": "ghost"})
    assert admin_ghost.status == 404


async def test_webhook_owner_of_a_sibling_or_unknown_id_is_refused_alike(
    api: ApiWorld, org: Org
) -> None:
    body = {"url": "https://hooks.example.com/in", "event_types": ["call.ended"]}
    sales = org.agents["sales"]
    sibling = await sales.post(
        "/../webhooks/subscriptions",
        {**body, "agent_identity_id": org.identities["support"].id},
    )
    ghost = await sales.post("/../webhooks/subscriptions", {**body, "agent_identity_id": GHOST_ID})
    assert (sibling.status, ghost.status) == (403, 403)
    assert sibling.body == ghost.body
    assert await api.repository.list_subscriptions(org.id) == []
