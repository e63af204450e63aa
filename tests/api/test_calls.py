"""Calls: place-call, listings on both path styles, transcripts, search and hang-up."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from tests.api.conftest import ApiWorld, Org, ScriptedCallControl
from trunkline.control_api.usage import CallLimits
from trunkline.storage.models import utcnow

WSS = "wss://agent.example.com/ws"
NO_TRUNK = "outbound calling is not available: no SIP trunk configured"
CALL_FIELDS = {
    "id",
    "local_phone_number",
    "remote_phone_number",
    "direction",
    "status",
    "client_websocket_url",
    "use_inkbox_tts",
    "use_inkbox_stt",
    "hangup_reason",
    "failure_detail",
    "started_at",
    "ended_at",
    "created_at",
    "updated_at",
    "recording_url",
}


async def _number(api: ApiWorld, org: Org, handle: str = "sales") -> dict[str, Any]:
    return await api.provision(
        org, handle, incoming_call_action="auto_accept", client_websocket_url=WSS
    )


def _place(number: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"from_number": number["number"], "to_number": "+14155550199", **extra}


# -- place-call -----------------------------------------------------------------------


async def test_place_call_without_trunk_is_503_and_records_a_failed_call(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    answer = await org.admin.post("/place-call", _place(number))
    assert (answer.status, answer.body) == (503, {"detail": NO_TRUNK})
    calls = (await org.admin.get(f"/numbers/{number['id']}/calls")).body
    assert len(calls) == 1
    assert (calls[0]["status"], calls[0]["direction"]) == ("failed", "outbound")
    assert calls[0]["ended_at"] is not None
    assert calls[0]["failure_detail"] == NO_TRUNK  # why it failed, on every read
    again = (await org.admin.get(f"/calls/{calls[0]['id']}")).body
    assert again["failure_detail"] == NO_TRUNK


async def test_place_call_dials_and_returns_call_with_rate_limit(api: ApiWorld) -> None:
    control = ScriptedCallControl(api.repository)
    api.call_control.current = control
    org = await api.org()
    number = await _number(api, org)
    answer = await org.admin.post(
        "/place-call", _place(number, origination="dedicated_number", mode="client_websocket")
    )
    assert answer.status == 201, answer
    call = answer.body
    assert set(call) == CALL_FIELDS | {"rate_limit"}
    assert (call["direction"], call["status"]) == ("outbound", "ringing")
    assert (call["local_phone_number"], call["remote_phone_number"]) == (
        number["number"],
        "+14155550199",
    )
    assert call["client_websocket_url"] == WSS
    # Owned before it is dialled, so a crash in between leaves it to the restart sweep.
    ((placed, _),) = control.placed
    assert placed.owner == control.owner
    live = await api.repository.list_live_calls(control.owner)
    assert [c.id for c in live] == [call["id"]]
    limits = CallLimits()
    assert call["rate_limit"] == {
        "calls_used": 1,
        "calls_remaining": limits.calls_per_window - 1,
        "calls_limit": limits.calls_per_window,
        "minutes_used": 0,
        "minutes_remaining": limits.minutes_per_window,
        "minutes_limit": limits.minutes_per_window,
    }
    placed_call, placed_number = control.placed[0]
    assert placed_call.id == call["id"] and placed_number.id == number["id"]


@pytest.mark.parametrize("call_limits", [CallLimits(calls_per_window=10, minutes_per_window=30)])
async def test_rate_limit_counts_real_outbound_usage(api: ApiWorld) -> None:
    api.call_control.current = ScriptedCallControl(api.repository)
    org = await api.org()
    number = await _number(api, org)
    await api.add_call(number, direction="outbound", talk_seconds=90)
    await api.add_call(number, direction="inbound", talk_seconds=600)
    await api.add_call(
        number, direction="outbound", talk_seconds=600, created_at=utcnow() - timedelta(days=2)
    )
    answer = await org.admin.post("/place-call", _place(number))
    assert answer.status == 201, answer
    assert answer.body["rate_limit"] == {
        "calls_used": 2,
        "calls_remaining": 8,
        "calls_limit": 10,
        "minutes_used": 2,
        "minutes_remaining": 28,
        "minutes_limit": 30,
    }


@pytest.mark.parametrize("call_limits", [CallLimits(calls_per_window=2)])
async def test_call_limit_reached_is_429_with_retry_after(api: ApiWorld) -> None:
    api.call_control.current = ScriptedCallControl(api.repository)
    org = await api.org()
    number = await _number(api, org)
    await api.add_call(number, direction="outbound", created_at=utcnow() - timedelta(hours=23))
    await api.add_call(number, direction="outbound")
    answer = await org.admin.post("/place-call", _place(number))
    assert answer.status == 429, answer
    retry_after = int(answer.headers["Retry-After"])
    assert 0 < retry_after <= 3600 + 5


@pytest.mark.parametrize("call_limits", [CallLimits(minutes_per_window=10)])
async def test_minute_limit_reached_is_429(api: ApiWorld) -> None:
    api.call_control.current = ScriptedCallControl(api.repository)
    org = await api.org()
    number = await _number(api, org)
    await api.add_call(number, direction="outbound", status="answered", talk_seconds=600)
    assert (await org.admin.post("/place-call", _place(number))).status == 429


async def test_dial_failure_is_502_and_the_call_failed(api: ApiWorld) -> None:
    control = ScriptedCallControl(api.repository)
    control.fail_with = "trunk refused: 403 Forbidden"
    api.call_control.current = control
    org = await api.org()
    number = await _number(api, org)
    answer = await org.admin.post("/place-call", _place(number))
    assert answer.status == 502
    assert "trunk refused" in answer.body["detail"]
    calls = (await org.admin.get("/calls")).body
    assert calls[0]["status"] == "failed"


async def test_place_call_from_inactive_number_is_400(api: ApiWorld) -> None:
    org = await api.org()
    released = await _number(api, org)
    await org.admin.delete(f"/numbers/{released['id']}")
    paused = await _number(api, org)
    await api.repository.update_number(paused["id"], {"status": "paused"})
    for number in (released, paused):
        answer = await org.admin.post("/place-call", _place(number))
        assert (answer.status, answer.body) == (400, {"detail": "from_number is not active"})


async def test_place_call_from_a_number_not_in_the_org_is_403(api: ApiWorld) -> None:
    org, other = await api.org("one"), await api.org("two")
    theirs = await _number(api, other)
    answer = await org.admin.post("/place-call", _place(theirs))
    unknown = await org.admin.post(
        "/place-call", {"from_number": "+19995550100", "to_number": "+14155550199"}
    )
    assert (answer.status, unknown.status) == (403, 403)
    assert answer.body == unknown.body
    assert (await other.admin.get("/calls")).body == []


async def test_identity_token_places_calls_only_from_its_numbers(api: ApiWorld) -> None:
    org = await api.org()
    theirs = await _number(api, org, "support")
    answer = await org.agents["sales"].post("/place-call", _place(theirs))
    assert answer.status == 403


async def test_place_call_uses_the_identity_websocket_when_the_number_has_none(
    api: ApiWorld,
) -> None:
    api.call_control.current = ScriptedCallControl(api.repository)
    org = await api.org()
    number = await api.provision(org)
    missing = await org.admin.post("/place-call", _place(number))
    assert missing.status == 422
    assert "client_websocket_url is required" in missing.body["detail"]
    await org.admin.put(
        "/incoming-call-action",
        {
            "incoming_call_action": "auto_accept",
            "agent_identity_id": org.identities["sales"].id,
            "client_websocket_url": "wss://identity.example.com/ws",
        },
    )
    answer = await org.admin.post("/place-call", _place(number))
    assert answer.status == 201
    assert answer.body["client_websocket_url"] == "wss://identity.example.com/ws"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"to_number": "4155550199"}, "to_number: must be an E.164 number"),
        ({"to_number": "+0155550199"}, "to_number: must be an E.164 number"),
        ({"to_number": None}, "to_number: expected a string"),
        (
            {"client_websocket_url": "https://a.example.com/ws"},
            "client_websocket_url: must be a wss://",
        ),
        ({"webhook_url": "ftp://a.example.com"}, "webhook_url: must be a https://"),
        ({"origination": "shared_imessage_number"}, "origination: must be one of"),
        ({"mode": "hosted_agent"}, "mode: must be one of"),
        ({"reason": "sell things"}, "reason: unknown field"),
    ],
)
async def test_place_call_validation(api: ApiWorld, change: dict[str, Any], message: str) -> None:
    org = await api.org()
    number = await _number(api, org)
    answer = await org.admin.post("/place-call", {**_place(number), **change})
    assert answer.status == 422, answer
    assert message in answer.body["detail"]


async def test_place_call_requires_both_numbers(api: ApiWorld) -> None:
    org = await api.org()
    answer = await org.admin.post("/place-call", {"to_number": "+14155550199"})
    assert (answer.status, answer.body) == (422, {"detail": "from_number is required"})


# -- listings -------------------------------------------------------------------------


async def test_number_calls_newest_first_with_pagination(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    start = utcnow() - timedelta(minutes=10)
    made = [await api.add_call(number, created_at=start + timedelta(minutes=i)) for i in range(5)]
    newest_first = [c.id for c in reversed(made)]
    listed = await org.admin.get(f"/numbers/{number['id']}/calls")
    assert [c["id"] for c in listed.body] == newest_first
    assert set(listed.body[0]) == CALL_FIELDS
    page = await org.admin.get(
        f"/numbers/{number['id']}/calls", params={"limit": "2", "offset": "1"}
    )
    assert [c["id"] for c in page.body] == newest_first[1:3]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit: must be at least 1"),
        ({"limit": "201"}, "limit: must be at most 200"),
        ({"limit": "ten"}, "limit: expected an integer"),
        ({"offset": "-1"}, "offset: must be at least 0"),
        ({"offset": "99999999999999999999999"}, "offset: expected an integer"),
    ],
)
async def test_pagination_validation(api: ApiWorld, params: dict[str, str], message: str) -> None:
    org = await api.org()
    number = await _number(api, org)
    answer = await org.admin.get(f"/numbers/{number['id']}/calls", params=params)
    assert (answer.status, answer.body) == (422, {"detail": message})
    flat = await org.admin.get("/calls", params=params)
    assert flat.status == 422


async def test_flat_calls_listing_and_identity_filter(api: ApiWorld) -> None:
    org = await api.org()
    sales = await _number(api, org, "sales")
    support = await _number(api, org, "support")
    sales_call = await api.add_call(sales)
    support_call = await api.add_call(support)
    everything = await org.admin.get("/calls")
    assert {c["id"] for c in everything.body} == {sales_call.id, support_call.id}
    only_sales = await org.admin.get(
        "/calls", params={"agent_identity_id": org.identities["sales"].id}
    )
    assert [c["id"] for c in only_sales.body] == [sales_call.id]
    agent_view = await org.agents["support"].get("/calls")
    assert [c["id"] for c in agent_view.body] == [support_call.id]
    naming_other = await org.agents["support"].get(
        "/calls", params={"agent_identity_id": org.identities["sales"].id}
    )
    assert naming_other.status == 403


async def test_get_call_on_both_paths(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    other = await _number(api, org, "support")
    call = await api.add_call(number)
    flat = await org.admin.get(f"/calls/{call.id}")
    nested = await org.admin.get(f"/numbers/{number['id']}/calls/{call.id}")
    assert flat.status == nested.status == 200
    assert flat.body == nested.body and flat.body["id"] == call.id
    wrong_number = await org.admin.get(f"/numbers/{other['id']}/calls/{call.id}")
    assert (wrong_number.status, wrong_number.body) == (404, {"detail": "Call not found"})
    assert (await org.admin.get("/calls/nope")).status == 404
    assert (await org.agents["support"].get(f"/calls/{call.id}")).status == 404


async def test_transcripts_in_sequence_on_both_paths(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    call = await api.add_call(number)
    for i, (party, text) in enumerate(
        [("remote", "hello there"), ("local", "hi, how can I help"), ("remote", "billing")]
    ):
        await api.add_segment(call, party, text, ts_ms=1000 * i)
    flat = await org.admin.get(f"/calls/{call.id}/transcripts")
    nested = await org.admin.get(f"/numbers/{number['id']}/calls/{call.id}/transcripts")
    assert flat.status == nested.status == 200 and flat.body == nested.body
    assert [s["seq"] for s in flat.body] == [0, 1, 2]
    assert [s["party"] for s in flat.body] == ["remote", "local", "remote"]
    assert set(flat.body[0]) == {"id", "call_id", "seq", "ts_ms", "party", "text", "created_at"}
    assert flat.body[2]["ts_ms"] == 2000


async def test_transcript_search(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    other = await _number(api, org, "support")
    call = await api.add_call(number)
    await api.add_segment(call, "remote", "I want to cancel my subscription", 0)
    await api.add_segment(call, "local", "Sorry to hear you want to cancel", 1500)
    await api.add_segment(call, "remote", "the weather is nice", 3000)
    other_call = await api.add_call(other)
    await api.add_segment(other_call, "remote", "cancel everything", 0)
    path = f"/numbers/{number['id']}/search"
    found = await org.admin.get(path, params={"q": "cancel"})
    assert found.status == 200
    assert {s["text"] for s in found.body} == {
        "I want to cancel my subscription",
        "Sorry to hear you want to cancel",
    }
    remote = await org.admin.get(path, params={"q": "cancel", "party": "remote"})
    assert [s["text"] for s in remote.body] == ["I want to cancel my subscription"]
    limited = await org.admin.get(path, params={"q": "cancel", "limit": "1"})
    assert len(limited.body) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "q is required"),
        ({"q": ""}, "q: must be at least 1 characters"),
        ({"q": "x" * 501}, "q: must be at most 500 characters"),
        ({"q": "   "}, "q: must not be blank"),
        ({"q": "x", "party": "agent"}, "party: must be one of"),
    ],
)
async def test_transcript_search_validation(
    api: ApiWorld, params: dict[str, str], message: str
) -> None:
    org = await api.org()
    number = await _number(api, org)
    answer = await org.admin.get(f"/numbers/{number['id']}/search", params=params)
    assert answer.status == 422
    assert answer.body["detail"].startswith(message)


async def test_search_with_query_syntax_characters_is_not_an_error(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    call = await api.add_call(number)
    await api.add_segment(call, "remote", "quote me a price", 0)
    for query in ['"unbalanced', "a AND", "NEAR(", "*", "price)", "'; drop table", "-x"]:
        answer = await org.admin.get(f"/numbers/{number['id']}/search", params={"q": query})
        assert answer.status == 200, (query, answer)


# -- hang-up ---------------------------------------------------------------------------


async def test_hangup_answered_call_completes_it(api: ApiWorld) -> None:
    control = ScriptedCallControl(api.repository)
    api.call_control.current = control
    org = await api.org()
    number = await _number(api, org)
    call = await api.add_call(number, status="answered")
    answer = await org.admin.post(f"/calls/{call.id}/hangup")
    assert answer.status == 200, answer
    assert (answer.body["status"], answer.body["hangup_reason"]) == ("completed", "local")
    assert answer.body["ended_at"] is not None
    assert control.hung_up == [call.id]
    again = await org.admin.post(f"/calls/{call.id}/hangup")
    assert (again.status, again.body) == (409, {"detail": "Call has already ended"})


async def test_hangup_before_answer_cancels_without_a_trunk(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    call = await api.add_call(number, status="ringing")
    answer = await org.admin.post(f"/calls/{call.id}/hangup")
    assert answer.status == 200
    assert (answer.body["status"], answer.body["hangup_reason"]) == ("canceled", "local")


async def test_racing_hangups_end_the_call_once(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    call = await api.add_call(number, status="answered")
    answers = await asyncio.gather(*(org.admin.post(f"/calls/{call.id}/hangup") for _ in range(5)))
    assert all(a.status in (200, 409) for a in answers)
    assert {a.body["status"] for a in answers if a.status == 200} == {"completed"}
    events = await api.repository.list_events(org.id)
    ended = [e for e in events if e.event_type == "call.ended" and e.data["id"] == call.id]
    assert len(ended) == 1


async def test_hangup_of_unknown_or_foreign_call_is_404(api: ApiWorld) -> None:
    org, other = await api.org("one"), await api.org("two")
    number = await _number(api, other)
    call = await api.add_call(number, status="answered")
    assert (await org.admin.post(f"/calls/{call.id}/hangup")).status == 404
    assert (
        await org.admin.post("/calls/00000000-0000-4000-8000-000000000000/hangup")
    ).status == 404
    stored = await api.repository.get_call(call.id)
    assert stored is not None and stored.status == "answered"
