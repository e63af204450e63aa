"""A call feature written once in the call core works on every leg, with no leg code for it.

Voicemail (no agent reachable, the number has a greeting) is the example: an
inbound SIP call and a Twilio media-stream call to the same number are both
answered without an agent, hear the beep, are recorded, and end ``completed``
with ``hangup_reason: voicemail``, while neither leg module knows voicemail.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from typing import Any

import aiohttp
import pytest

from tests.gateway.conftest import NUMBER, Trunkline, free_port
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_carrier_streams import (
    AUTH_TOKEN,
    CARRIER_CREDENTIALS,
    answer_twilio_call,
    carrier_base_url,
    twilio_start,
)
from tests.gateway.test_inbound_calls import wait_for_status
from trunkline.gateway import carrier_streams, sip_inbound_leg
from trunkline.messaging.carrier_formats import twilio_signature
from trunkline.speech.synthesizer import beep
from trunkline.storage.models import InboundRouting

GREETING = "Please leave a message after the tone."
BEEP_BYTES = len(beep())

pytestmark = CARRIER_CREDENTIALS


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    return {"transcription": "off", "text_to_speech": "off"}  # the greeting is the beep alone


def test_no_leg_module_has_voicemail_code() -> None:
    for leg in (sip_inbound_leg, carrier_streams):
        code = inspect.getsource(leg).split('"""', 2)[2]  # past the module docstring
        assert "voicemail" not in code.lower(), leg.__name__


async def test_voicemail_on_a_sip_call_and_on_a_carrier_stream(trunkline: Trunkline) -> None:
    base = carrier_base_url(trunkline)
    unreachable = f"ws://127.0.0.1:{free_port(1)}/agent"  # nothing listens there
    number = await trunkline.number(
        "auto_accept", unreachable, inbound_routing=InboundRouting(voicemail_message=GREETING)
    )
    repository = trunkline.services.repository

    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        assert (await carrier.received_audio(BEEP_BYTES // 2, wait_seconds=10)).strip(b"\xff")
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()

    url = f"{base}/twilio/media-stream"
    headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, [])}
    async with aiohttp.ClientSession() as http:
        parameters = await answer_twilio_call(http, trunkline)
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_json(twilio_start(**parameters))
        heard = bytearray()
        async with asyncio.timeout(10):
            while len(heard) < BEEP_BYTES // 2:
                frame = json.loads((await ws.receive()).data)
                if frame.get("event") == "media":
                    heard += base64.b64decode(frame["media"]["payload"]).strip(b"\xff")
        await ws.send_json({"event": "stop", "streamSid": "MZ" + "0" * 32})

    calls = await repository.list_calls(number.organization_id)
    assert len(calls) == 2
    for call in calls:
        await wait_for_status(trunkline, call.id, "completed")
    for _ in range(200):
        stored = [await repository.get_call(call.id) for call in calls]
        if all(s is not None and s.recording_key for s in stored):
            break
        await asyncio.sleep(0.05)
    assert {(s.hangup_reason, bool(s.recording_key)) for s in stored if s is not None} == {
        ("voicemail", True)
    }
    legs = sorted("stream" if s.sip_call_id.startswith("twilio:") else "sip"
                  for s in stored if s is not None and s.sip_call_id)  # fmt: skip
    assert legs == ["sip", "stream"]
