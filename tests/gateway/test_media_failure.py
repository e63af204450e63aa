"""A call whose frame tick fails: logged once with its call id, counted, and ended cleanly."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.gateway.conftest import NUMBER, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from trunkline.gateway.rtp.leg import RtpLeg


async def test_a_failing_media_tick_ends_the_call_and_is_logged_once(
    trunkline: Trunkline,
    echo_agent: EchoAgent,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        (call,) = trunkline.gateway.calls.values()
        clock = trunkline.gateway.clock
        errors_before = clock.callback_errors

        def broken(self: RtpLeg, frame: bytes | None) -> None:
            raise OSError("the socket refused the frame")

        with caplog.at_level(logging.ERROR):
            monkeypatch.setattr(RtpLeg, "send_frame", broken)
            bye = await carrier.expect_request("BYE")  # the call ends from our side
            await asyncio.sleep(0.3)  # fifteen more frame times: nothing more is logged
        assert bye.call_id == carrier.call_id
        failures = [r for r in caplog.records if "media tick failed" in r.getMessage()]
        assert len(failures) == 1
        assert getattr(failures[0], "call_id", None) == call.lifecycle.call_id
        assert clock.callback_errors == errors_before + 1
        assert trunkline.gateway.calls == {}
        record = await trunkline.services.repository.get_call(call.lifecycle.call_id)
        assert record is not None and record.status == "completed"
        assert record.hangup_reason == "local"
        await asyncio.wait_for(echo_agent.calls[0].closed.wait(), 5)
        assert any(event.get("event") == "stop" for event in echo_agent.calls[0].events)
    finally:
        carrier.close()
