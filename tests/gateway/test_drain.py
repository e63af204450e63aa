"""Graceful drain on SIGTERM, the duration cap: calls end cleanly with the right reason."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from tests.gateway.conftest import NUMBER, PASS_THROUGH, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_inbound_calls import wait_for_status
from trunkline.runtime import open_runtime
from trunkline.storage import open_repository
from trunkline.storage.blobs import LocalBlobStore
from trunkline.storage.models import WebhookSubscription, new_id, utcnow


@PASS_THROUGH
@pytest.mark.settings(shutdown_timeout_seconds=30)
async def test_drain_refuses_new_calls_and_lets_live_ones_finish(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    number = await trunkline.number("auto_accept", echo_agent.url)
    carriers = [await CarrierCall.open(trunkline.sip_port) for _ in range(3)]
    late = await CarrierCall.open(trunkline.sip_port)
    try:
        for carrier in carriers:
            assert (await carrier.invite(NUMBER)).status == 200
        trunkline.shutdown.requested.set()  # what SIGTERM does
        await asyncio.sleep(0.1)
        refused = await late.invite(NUMBER)
        assert (refused.status, refused.headers.get("Retry-After")) == (503, "30")
        url = f"http://127.0.0.1:{trunkline.http_port}/readyz"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 503
        assert not trunkline.task.done()  # waiting for the live calls
        for carrier in carriers:
            await carrier.send_audio([b"\x12" * 160] * 3)
            assert await carrier.received_audio(480) == b"\x12" * 480  # still bridged
        calls = await trunkline.services.repository.list_calls(number.organization_id)
        answered = {c.id for c in calls if c.started_at is not None}
        assert len(answered) == 3
        for carrier in carriers:
            assert (await carrier.bye(NUMBER)).status == 200
        # The process exits once the last call is done; what it stored is read afterwards,
        # from a fresh look at the database: everything must be there before it exits.
        await asyncio.wait_for(asyncio.shield(trunkline.task), 10)
    finally:
        for carrier in [*carriers, late]:
            carrier.close()
    settings = trunkline.services.settings
    repository = await open_repository(settings.database_url)
    try:
        for call_id in answered:
            stored = await repository.get_call(call_id)
            assert stored is not None
            assert (stored.status, stored.hangup_reason) == ("completed", "remote")
            assert stored.recording_key == f"recordings/{call_id}.wav"
    finally:
        await repository.close()


@pytest.mark.settings(shutdown_timeout_seconds=600)
async def test_second_signal_ends_live_calls_at_once(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        trunkline.shutdown.requested.set()
        await asyncio.sleep(0.2)
        trunkline.shutdown.hurried.set()  # a second SIGTERM
        bye = await carrier.expect_request("BYE", wait_seconds=5)
        assert bye.call_id == carrier.call_id
        await asyncio.wait_for(asyncio.shield(trunkline.task), 10)
    finally:
        carrier.close()
    (agent,) = echo_agent.calls
    await asyncio.wait_for(agent.closed.wait(), 5)
    assert agent.events[-1] == {"event": "stop", "reason": "local"}
    call_id = agent.events[0]["start"]["call_id"]
    store = trunkline.services.blob_store
    assert isinstance(store, LocalBlobStore)
    assert store.path_for(f"recordings/{call_id}.wav").stat().st_size > 44  # stored before exit


@pytest.mark.settings(max_call_seconds=0.5)
async def test_calls_end_at_the_duration_cap(trunkline: Trunkline, echo_agent: EchoAgent) -> None:
    number = await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        bye = await carrier.expect_request("BYE", wait_seconds=5)
        assert bye.call_id == carrier.call_id
    finally:
        carrier.close()
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    await wait_for_status(trunkline, call.id, "completed")
    stored = await trunkline.services.repository.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "max_duration"
    (agent,) = echo_agent.calls
    await asyncio.wait_for(agent.closed.wait(), 5)
    assert agent.events[-1] == {"event": "stop", "reason": "max_duration"}


@pytest.mark.parametrize("ending", ["callers hang up", "second signal"])
@pytest.mark.settings(shutdown_timeout_seconds=30)
async def test_drain_with_ten_live_calls_leaves_nothing_in_the_outbox(
    trunkline: Trunkline, echo_agent: EchoAgent, ending: str
) -> None:
    received: Counter[str] = Counter()

    async def receive(request: web.Request) -> web.Response:
        received[json.loads(await request.read())["event_type"]] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    number = await trunkline.number("auto_accept", echo_agent.url)
    now = utcnow()
    await trunkline.services.repository.create_subscription(
        WebhookSubscription(
            id=new_id(),
            organization_id=number.organization_id,
            agent_identity_id=None,
            phone_number_id=number.id,
            url=f"http://127.0.0.1:{hook_port}/hooks",
            event_types=["call.started", "call.ended", "recording.ready"],
            status="active",
            created_at=now,
            updated_at=now,
        )
    )
    carriers = [await CarrierCall.open(trunkline.sip_port) for _ in range(10)]
    late = await CarrierCall.open(trunkline.sip_port)
    try:
        for carrier in carriers:
            assert (await carrier.invite(NUMBER)).status == 200
        trunkline.shutdown.requested.set()  # what SIGTERM does
        await asyncio.sleep(0.1)
        assert (await late.invite(NUMBER)).status == 503
        await asyncio.gather(*(carrier.send_audio([b"\x33" * 160] * 25) for carrier in carriers))
        if ending == "callers hang up":
            for carrier in carriers:
                assert (await carrier.bye(NUMBER)).status == 200
        else:
            trunkline.shutdown.hurried.set()  # a second SIGTERM: trunkline ends them
            for carrier in carriers:
                assert (await carrier.expect_request("BYE")).call_id == carrier.call_id
        await asyncio.wait_for(asyncio.shield(trunkline.task), 30)  # exits once they are done
        assert trunkline.task.exception() is None
    finally:
        for carrier in [*carriers, late]:
            carrier.close()
        await runner.cleanup()
    assert received == {"call.started": 10, "call.ended": 10, "recording.ready": 10}
    # The process has exited: look at what it left behind with fresh eyes.
    async with open_runtime(trunkline.services.settings) as runtime:
        repository = runtime.repository
        assert await repository.pending_deliveries() == 0
        calls = await repository.list_calls(number.organization_id)
        answered = [c for c in calls if c.started_at is not None]
        assert len(answered) == 10
        store = runtime.blob_store
        assert isinstance(store, LocalBlobStore)
        for call in answered:
            reason = "remote" if ending == "callers hang up" else "local"
            assert (call.status, call.hangup_reason) == ("completed", reason)
            assert call.recording_key == f"recordings/{call.id}.wav"
            assert store.path_for(call.recording_key).stat().st_size > 44 + 2 * 2 * 8000 * 0.4
