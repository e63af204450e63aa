"""Twilio's REST hang-up (``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.api.conftest import ApiWorld, Org, ScriptedCallControl
from trunkline.agent.twilio_protocol import account_sid_for, call_sid_for
from trunkline.control_api.twilio_calls import basic_credentials
from trunkline.storage.models import Call

WSS = "wss://agent.example.com/ws"
ERROR_FIELDS = {"code", "message", "more_info", "status"}


async def _number(api: ApiWorld, org: Org, handle: str = "sales") -> dict[str, Any]:
    return await api.provision(
        org, handle, incoming_call_action="auto_accept", client_websocket_url=WSS
    )


async def twilio_update(
    api: ApiWorld,
    call: Call,
    *,
    account_sid: str,
    password: str | None,
    login: str | None = None,
    form: dict[str, str] | None = None,
    call_sid: str | None = None,
) -> tuple[int, Any]:
    url = (
        f"{api.base_url}/2010-04-01/Accounts/{account_sid}/Calls/"
        f"{call_sid or call_sid_for(call.id)}.json"
    )
    headers = {}
    if password is not None:
        pair = f"{login or account_sid}:{password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    data = form if form is not None else {"Status": "completed"}
    async with api.session.post(url, data=data, headers=headers) as response:
        return response.status, await response.json()


def twilio_error(body: Any, status: int, code: int) -> bool:
    return (
        set(body) == ERROR_FIELDS
        and (body["status"], body["code"]) == (status, code)
        and body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    )


async def test_status_completed_hangs_up_an_answered_call(api: ApiWorld) -> None:
    control = ScriptedCallControl(api.repository)
    api.call_control.current = control
    org = await api.org()
    call = await api.add_call(await _number(api, org), status="answered")
    account = account_sid_for(org.id)
    status, body = await twilio_update(api, call, account_sid=account, password=org.admin_token)
    assert status == 200, body
    assert (body["sid"], body["account_sid"]) == (call_sid_for(call.id), account)
    assert (body["status"], body["direction"], body["api_version"]) == (
        "completed",
        "inbound",
        "2010-04-01",
    )
    assert (body["from"], body["to"]) == (call.remote_phone_number, call.local_phone_number)
    assert body["uri"] == f"/2010-04-01/Accounts/{account}/Calls/{body['sid']}.json"
    assert body["end_time"] is not None and body["end_time"].endswith("+0000")
    assert control.hung_up == [call.id]  # the live call was ended where it is carried
    stored = await api.repository.get_call(call.id)
    assert stored is not None and (stored.status, stored.hangup_reason) == ("completed", "local")
    # Ended: Twilio's 20404, which pipecat's serializer takes as "already terminated".
    status, body = await twilio_update(api, call, account_sid=account, password=org.admin_token)
    assert status == 404 and twilio_error(body, 404, 20404)


async def test_canceled_ends_a_ringing_call_but_not_an_answered_one(api: ApiWorld) -> None:
    org = await api.org()
    number = await _number(api, org)
    ringing = await api.add_call(number, status="ringing")
    answered = await api.add_call(number, status="answered")
    account, token = account_sid_for(org.id), org.admin_token
    canceled = {"Status": "canceled"}
    status, body = await twilio_update(
        api, ringing, account_sid=account, password=token, form=canceled
    )
    assert (status, body["status"]) == (200, "canceled")
    status, body = await twilio_update(
        api, answered, account_sid=account, password=token, form=canceled
    )
    assert status == 400 and twilio_error(body, 400, 21220)
    for form in ({}, {"Status": "in-progress"}, {"status": "completed"}):
        status, body = await twilio_update(
            api, answered, account_sid=account, password=token, form=form
        )
        assert status == 400 and twilio_error(body, 400, 21200)
    stored = await api.repository.get_call(answered.id)
    assert stored is not None and stored.status == "answered"


async def test_credentials_must_be_a_token_with_its_own_organisations_account_sid(
    api: ApiWorld,
) -> None:
    org, other = await api.org("acme"), await api.org("globex")
    call = await api.add_call(await _number(api, org), status="answered")
    account = account_sid_for(org.id)
    refused = [
        await twilio_update(api, call, account_sid=account, password=None),
        await twilio_update(api, call, account_sid=account, password="not-a-token"),
        # another organisation's token presented with this organisation's accountSid
        await twilio_update(api, call, account_sid=account, password=other.admin_token),
        # the right token with a made-up accountSid
        await twilio_update(api, call, account_sid="AC" + "0" * 32, password=org.admin_token),
    ]
    for status, body in refused:
        assert status == 401 and twilio_error(body, 401, 20003)
        assert body["message"] == "Authenticate"
    stored = await api.repository.get_call(call.id)
    assert stored is not None and stored.status == "answered"


async def test_no_one_hangs_up_another_organisations_call(api: ApiWorld) -> None:
    org, other = await api.org("acme"), await api.org("globex")
    call = await api.add_call(await _number(api, org), status="answered")
    theirs, mine = account_sid_for(other.id), account_sid_for(org.id)
    attempts = [
        # globex's own credentials and accountSid, acme's CallSid
        await twilio_update(api, call, account_sid=theirs, password=other.admin_token),
        # globex's credentials in the Basic header, acme's accountSid in the path
        await twilio_update(api, call, account_sid=mine, login=theirs, password=other.admin_token),
        # an identity token of acme that does not see this number's identity
        await twilio_update(api, call, account_sid=mine, password=org.agent_tokens["support"]),
        # CallSids that name no call
        await twilio_update(
            api, call, account_sid=mine, password=org.admin_token, call_sid="CA" + "0" * 32
        ),
        await twilio_update(
            api, call, account_sid=mine, password=org.admin_token, call_sid="CAnot-a-call"
        ),
    ]
    for status, body in attempts:
        assert status == 404 and twilio_error(body, 404, 20404)
    stored = await api.repository.get_call(call.id)
    assert stored is not None and stored.status == "answered"
    # The identity token of the number's own identity may hang it up.
    status, body = await twilio_update(
        api, call, account_sid=mine, password=org.agent_tokens["sales"]
    )
    assert (status, body["status"]) == (200, "completed")


def test_only_a_well_formed_basic_header_yields_credentials() -> None:
    def basic(raw: bytes) -> str:
        return "Basic " + base64.b64encode(raw).decode()

    assert basic_credentials(basic(b"ACabc:tok:en")) == ("ACabc", "tok:en")
    assert basic_credentials("basic " + basic(b"a:b")[6:]) == ("a", "b")
    for header in ("", "Bearer abc", "Basic", "Basic !!!!", basic(b"no-colon"), basic(b":x"),
                   basic(b"AC:"), basic(b"\xff:\xfe"), "Basic " + "QUFB" * 1000):  # fmt: skip
        assert basic_credentials(header) is None


@pytest.mark.settings(api_unauthenticated_burst=2, api_unauthenticated_rate_per_second=0.01)
async def test_failed_guesses_spend_the_addresses_rate_limit(api: ApiWorld) -> None:
    org = await api.org()
    call = await api.add_call(await _number(api, org), status="answered")
    account = account_sid_for(org.id)
    answers = [
        await twilio_update(api, call, account_sid=account, password="guess") for _ in range(3)
    ]
    assert [status for status, _ in answers] == [401, 401, 429]
    assert twilio_error(answers[2][1], 429, 20429)
    # Even the right token is not looked up from an address whose budget is spent.
    status, body = await twilio_update(api, call, account_sid=account, password=org.admin_token)
    assert status == 429 and twilio_error(body, 429, 20429)
