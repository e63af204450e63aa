"""The per-organisation concurrent-call limit: SIP 503 and place-call 429 beyond it."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Api, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall


@pytest.mark.settings(max_calls_per_org=1)
async def test_calls_beyond_the_organisation_limit_are_refused(
    trunkline: Trunkline, echo_agent: EchoAgent, api: Api
) -> None:
    status, number = await api.post(
        "/numbers",
        {
            "agent_handle": "sales",
            "incoming_call_action": "auto_accept",
            "client_websocket_url": echo_agent.url,
        },
    )
    assert status == 201, number
    first = await CarrierCall.open(trunkline.sip_port)
    second = await CarrierCall.open(trunkline.sip_port)
    third = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await first.invite(number["number"])).status == 200
        busy = await second.invite(number["number"])
        assert (busy.status, busy.headers.get("Retry-After")) == (503, "30")
        status, body = await api.post(
            "/place-call", {"from_number": number["number"], "to_number": "+14155550142"}
        )
        assert (status, body) == (
            429,
            {"detail": "Too many concurrent calls for this organisation"},
        )
        assert (await first.bye(number["number"])).status == 200
        assert (await third.invite(number["number"])).status == 200  # room again
        assert (await third.bye(number["number"])).status == 200
    finally:
        for carrier in (first, second, third):
            carrier.close()
