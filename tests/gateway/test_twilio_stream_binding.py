"""A Twilio media stream opens only for a call trunkline answered, with that call's token, once."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest

from tests.gateway.conftest import NUMBER, EchoAgent, Trunkline
from tests.gateway.test_carrier_streams import (
    AUTH_TOKEN,
    CALLER,
    CARRIER_CREDENTIALS,
    carrier_base_url,
    twilio_start,
)
from tests.gateway.test_metrics import scrape, value
from trunkline.gateway.carriers.stream_tokens import TOKEN_PARAMETER, issue_stream_token
from trunkline.messaging.carrier_formats import twilio_signature

CALL_SID = "CA" + "a" * 32
OTHER_SID = "CA" + "b" * 32

pytestmark = CARRIER_CREDENTIALS


async def answer_call(
    http: aiohttp.ClientSession, trunkline: Trunkline, call_sid: str, to: str = NUMBER
) -> dict[str, str]:
    """Twilio's voice webhook for a new call: the parameters trunkline's TwiML streams with."""
    url = f"http://127.0.0.1:{trunkline.http_port}/carrier/twilio/voice"
    fields = {"AccountSid": "AC" + "1" * 32, "CallSid": call_sid, "To": to, "From": CALLER,
              "CallStatus": "ringing", "Direction": "inbound"}  # fmt: skip
    headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, list(fields.items()))}
    async with http.post(url, data=fields, headers=headers) as response:
        assert response.status == 200 and response.content_type == "text/xml"
        twiml = ElementTree.fromstring(await response.text())
    stream = twiml.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == f"ws://127.0.0.1:{trunkline.http_port}/carrier/twilio/media-stream"
    return {item.get("name", ""): item.get("value", "") for item in stream.findall("Parameter")}


def start_for(call_sid: str, parameters: dict[str, str]) -> dict[str, Any]:
    start = twilio_start()
    start["start"]["callSid"] = call_sid
    start["start"]["customParameters"] = parameters
    return start


async def refused_with(http: aiohttp.ClientSession, url: str, start: dict[str, Any]) -> int:
    headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, [])}
    async with http.ws_connect(url, headers=headers) as ws:
        await ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await ws.send_json(start)
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == aiohttp.WSMsgType.CLOSE
        return int(message.data)


async def test_a_stream_with_its_calls_token_is_bridged_and_only_once(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    base = carrier_base_url(trunkline)
    number = await trunkline.number("auto_accept", echo_agent.url)
    url = f"{base}/twilio/media-stream"
    headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, [])}
    before = await scrape(trunkline)
    async with aiohttp.ClientSession() as http:
        parameters = await answer_call(http, trunkline, CALL_SID)
        assert parameters["to"] == NUMBER and parameters["from"] == CALLER
        async with http.ws_connect(url, headers=headers) as ws:
            await ws.send_json(start_for(CALL_SID, parameters))
            payload = base64.b64encode(b"\x42" * 160).decode()
            await ws.send_json({"event": "media", "media": {"payload": payload}})
            echoed = await asyncio.wait_for(ws.receive_json(), 10)
            assert base64.b64decode(echoed["media"]["payload"]) == b"\x42" * 160
            # The same signed upgrade and the same start again, while the first streams.
            assert await refused_with(http, url, start_for(CALL_SID, parameters)) == 1008
            await ws.send_json({"event": "stop"})
        # ... and after it ended.
        assert await refused_with(http, url, start_for(CALL_SID, parameters)) == 1008
    after = await scrape(trunkline)
    name = "trunkline_carrier_streams_refused_total"
    assert value(after, name, reason="replayed") - value(before, name, reason="replayed") == 2
    calls = await trunkline.services.repository.list_calls(number.organization_id)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("another call's token", "token_invalid"),
        ("no token", "token_missing"),
        ("another dialled number", "token_invalid"),
        ("expired token", "token_expired"),
        ("forged token", "token_invalid"),
    ],
)
async def test_a_stream_without_a_valid_token_for_its_call_is_refused(
    trunkline: Trunkline, echo_agent: EchoAgent, case: str, reason: str
) -> None:
    base = carrier_base_url(trunkline)
    number = await trunkline.number("auto_accept", echo_agent.url)
    await trunkline.number("auto_accept", echo_agent.url, e164="+15550100002")
    url = f"{base}/twilio/media-stream"
    before = await scrape(trunkline)
    async with aiohttp.ClientSession() as http:
        parameters = await answer_call(http, trunkline, CALL_SID)
        call_sid = CALL_SID
        if case == "another call's token":
            call_sid = OTHER_SID  # a replayed upgrade naming a call trunkline never answered
        elif case == "no token":
            del parameters[TOKEN_PARAMETER]
        elif case == "another dialled number":
            parameters["to"] = "+15550100002"
        elif case == "expired token":
            issued_long_ago = int(time.time()) - 1  # what the TwiML said, once its lifetime passed
            parameters[TOKEN_PARAMETER] = issue_stream_token(
                AUTH_TOKEN, CALL_SID, NUMBER, CALLER, issued_long_ago
            )
        else:
            expires = int(time.time()) + 60
            parameters[TOKEN_PARAMETER] = f"{expires}." + "A" * 43
        assert await refused_with(http, url, start_for(call_sid, parameters)) == 1008
    after = await scrape(trunkline)
    name = "trunkline_carrier_streams_refused_total"
    assert value(after, name, reason=reason) - value(before, name, reason=reason) == 1
    assert not trunkline.gateway.calls
    assert await trunkline.services.repository.list_calls(number.organization_id) == []
    assert echo_agent.calls == []


async def test_the_voice_webhook_needs_twilios_signature(trunkline: Trunkline) -> None:
    carrier_base_url(trunkline)
    url = f"http://127.0.0.1:{trunkline.http_port}/carrier/twilio/voice"
    fields = {"CallSid": CALL_SID, "To": NUMBER, "From": CALLER}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=fields) as response:
            assert response.status == 403
            assert await response.json() == {"detail": "missing X-Twilio-Signature"}
        headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, [])}
        async with http.post(url, data=fields, headers=headers) as response:
            assert response.status == 403
            assert await response.json() == {"detail": "Twilio signature does not match"}
