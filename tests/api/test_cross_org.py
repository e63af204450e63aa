"""Another organisation's objects are refused on every resource, and nothing about them changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import ApiWorld, Org
from trunkline.storage.models import Call, Text

FOREIGN_NUMBER = {"detail": "Number does not belong to your organization"}
WSS = "wss://agent.example.com/ws"


@dataclass
class Victim:
    org: Org
    number: dict[str, Any]
    call: Call
    text: Text


@pytest.fixture
async def two_orgs(api: ApiWorld) -> tuple[Org, Victim]:
    intruder = await api.org("intruder")
    owner = await api.org("owner")
    number = await api.provision(
        owner, incoming_call_action="auto_accept", client_websocket_url=WSS
    )
    call = await api.add_call(number, status="answered")
    await api.add_segment(call, "remote", "secret plans for the merger", 0)
    text = await api.add_text(number, "+14155550101", "secret text about the merger")
    return intruder, Victim(owner, number, call, text)


async def test_phone_numbers_of_another_org_are_403(
    api: ApiWorld, two_orgs: tuple[Org, Victim]
) -> None:
    intruder, victim = two_orgs
    path = f"/numbers/{victim.number['id']}"
    for answer in (
        await intruder.admin.get(path),
        await intruder.admin.patch(path, {"incoming_call_action": "auto_reject"}),
        await intruder.admin.delete(path),
    ):
        assert (answer.status, answer.body) == (403, FOREIGN_NUMBER)
    listed = await intruder.admin.get("/numbers")
    assert listed.body == []
    unchanged = await victim.org.admin.get(path)
    assert unchanged.body == victim.number


async def test_texts_of_another_org_are_refused(
    api: ApiWorld, two_orgs: tuple[Org, Victim]
) -> None:
    intruder, victim = two_orgs
    base = f"/numbers/{victim.number['id']}/texts"
    for path, params in [
        (base, None),
        (f"{base}/search", {"q": "merger"}),
        (f"{base}/conversations", None),
        (f"{base}/conversations/+14155550101", None),
    ]:
        answer = await intruder.admin.get(path, params=params)
        assert (answer.status, answer.body) == (403, FOREIGN_NUMBER), path
    bulk = await intruder.admin.patch(f"{base}/conversations/+14155550101", {"is_read": True})
    assert bulk.status == 403
    single = f"{base}/{victim.text.id}"
    assert (await intruder.admin.get(single)).status == 404
    assert (await intruder.admin.patch(single, {"status": "deleted"})).status == 404
    stored = await api.repository.get_text(victim.number["id"], victim.text.id)
    assert stored is not None and (stored.status, stored.is_read) == ("active", False)


async def test_calls_of_another_org_are_refused(
    api: ApiWorld, two_orgs: tuple[Org, Victim]
) -> None:
    intruder, victim = two_orgs
    call_id = victim.call.id
    assert (await intruder.admin.get(f"/calls/{call_id}")).status == 404
    assert (await intruder.admin.get("/calls")).body == []
    nested = await intruder.admin.get(f"/numbers/{victim.number['id']}/calls")
    assert (nested.status, nested.body) == (403, FOREIGN_NUMBER)
    nested_one = await intruder.admin.get(f"/numbers/{victim.number['id']}/calls/{call_id}")
    assert nested_one.status == 403
    hangup = await intruder.admin.post(f"/calls/{call_id}/hangup")
    assert hangup.status == 404
    stored = await api.repository.get_call(call_id)
    assert stored is not None and stored.status == "answered"


async def test_transcripts_of_another_org_are_refused(
    api: ApiWorld, two_orgs: tuple[Org, Victim]
) -> None:
    intruder, victim = two_orgs
    flat = await intruder.admin.get(f"/calls/{victim.call.id}/transcripts")
    assert flat.status == 404
    nested = await intruder.admin.get(
        f"/numbers/{victim.number['id']}/calls/{victim.call.id}/transcripts"
    )
    assert nested.status == 403
    search = await intruder.admin.get(
        f"/numbers/{victim.number['id']}/search", params={"q": "merger"}
    )
    assert (search.status, search.body) == (403, FOREIGN_NUMBER)


async def test_place_call_from_another_orgs_number_is_403(
    api: ApiWorld, two_orgs: tuple[Org, Victim]
) -> None:
    intruder, victim = two_orgs
    answer = await intruder.admin.post(
        "/place-call", {"from_number": victim.number["number"], "to_number": "+14155550199"}
    )
    assert answer.status == 403
    assert await api.repository.list_calls(intruder.id) == []


async def test_identities_of_another_org_are_not_found(
    api: ApiWorld, two_orgs: tuple[Org, Victim]
) -> None:
    intruder, victim = two_orgs
    foreign = victim.org.identities["sales"]
    put = await intruder.admin.put(
        "/incoming-call-action",
        {"incoming_call_action": "auto_reject", "agent_identity_id": foreign.id},
    )
    get = await intruder.admin.get(
        "/incoming-call-action", params={"agent_identity_id": foreign.id}
    )
    assert (put.status, get.status) == (404, 404)
    assert await api.repository.get_incoming_call_config(foreign.id) is None
    calls = await intruder.admin.get("/calls", params={"agent_identity_id": foreign.id})
    assert calls.body == []


async def test_numbers_cannot_be_assigned_to_another_orgs_agent(
    api: ApiWorld, two_orgs: tuple[Org, Victim]
) -> None:
    intruder, victim = two_orgs
    victim_agent = victim.org.identities["support"]
    await api.repository.create_identity(intruder.id, "only-mine", None)
    provision = await intruder.admin.post("/numbers", {"agent_handle": "only-theirs"})
    assert provision.status == 404
    register = await intruder.admin.post(
        "/numbers/register",
        {
            "phone_number": "+15739693824",
            "provider": "telnyx",
            "agent_id": victim_agent.id,
            "provider_config": {"trunk_address": "sip.telnyx.com"},
        },
    )
    assert register.status == 404
    own = await intruder.admin.post(
        "/numbers/register",
        {
            "phone_number": "+15739693824",
            "provider": "telnyx",
            "agent_id": "only-mine",
            "provider_config": {"trunk_address": "sip.telnyx.com"},
            "inbound_routing": {"fallback": {"agent_id": victim_agent.id}},
        },
    )
    assert own.status == 404
    assert "inbound_routing.fallback.agent_id" in own.body["detail"]


async def test_identity_token_cannot_reach_another_identitys_objects(
    api: ApiWorld, two_orgs: tuple[Org, Victim]
) -> None:
    _, victim = two_orgs
    support = victim.org.agents["support"]
    path = f"/numbers/{victim.number['id']}"
    assert (await support.get(path)).status == 403
    assert (await support.get(f"{path}/texts")).status == 403
    assert (await support.get(f"{path}/texts/{victim.text.id}")).status == 404
    assert (await support.get(f"/calls/{victim.call.id}")).status == 404
    assert (await support.get(f"/calls/{victim.call.id}/transcripts")).status == 404
    assert (await support.post(f"/calls/{victim.call.id}/hangup")).status == 404
    assert (await support.get(f"{path}/search", params={"q": "merger"})).status == 403
    assert (await support.get("/calls")).body == []
