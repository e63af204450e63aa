"""A running daemon delivers a subscribed event, signed so the receiver can verify it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from aiohttp import web
from inkbox.signing_keys import verify_webhook as sdk_verify_webhook

from trunkline.config import settings_from
from trunkline.crypto import hash_token, new_token
from trunkline.daemon import ShutdownSignal, serve
from trunkline.runtime import Runtime
from trunkline.storage.models import EventDraft
from trunkline.webhooks import verify_webhook


async def test_daemon_delivers_signed_events(tmp_path: Path) -> None:
    received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue(maxsize=10)

    async def hook(request: web.Request) -> web.Response:
        received.put_nowait((dict(request.headers), await request.read()))
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = web.AppRunner(receiver_app, access_log=None)
    await receiver.setup()
    await web.TCPSite(receiver, "127.0.0.1", 0).start()
    hook_url = f"http://127.0.0.1:{receiver.addresses[0][1]}/hook"

    settings = settings_from(
        {
            "data_dir": tmp_path / "data",
            "host": "127.0.0.1",
            "http_port": 0,
            "allow_insecure_urls": True,
            "allow_private_targets": True,
        }
    )
    ready: asyncio.Future[tuple[Runtime, int]] = asyncio.get_running_loop().create_future()
    shutdown = ShutdownSignal()
    daemon = asyncio.create_task(
        serve(settings, on_ready=lambda s, p: ready.set_result((s, p)), shutdown=shutdown)
    )
    try:
        runtime, port = await asyncio.wait_for(ready, 20)
        repository = runtime.repository
        org = await repository.create_organization("acme")
        identity = await repository.create_identity(org.id, "sales", None)
        token = new_token()
        await repository.create_token(org.id, None, hash_token(token))
        async with (
            aiohttp.ClientSession(headers={"X-API-Key": token}) as http,
            http.post(
                f"http://127.0.0.1:{port}/api/v1/webhooks/subscriptions",
                json={
                    "url": hook_url,
                    "event_types": ["call.ended"],
                    "agent_identity_id": identity.id,
                },
            ) as response,
        ):
            assert response.status == 201
            signing_key = (await response.json())["signing_key"]
        event = EventDraft("call.ended", org.id, {"id": "c1"}, agent_identity_id=identity.id)
        await repository.add_events([event])
        headers, body = await asyncio.wait_for(received.get(), 10)
        assert json.loads(body)["id"] == event.id
        assert headers["X-Inkbox-Request-ID"] == event.id
        assert verify_webhook(headers, body, signing_key)
        assert sdk_verify_webhook(payload=body, headers=headers, secret=signing_key)
        for _ in range(50):
            if await repository.pending_deliveries() == 0:
                break
            await asyncio.sleep(0.05)
        assert await repository.pending_deliveries() == 0
    finally:
        shutdown.requested.set()
        await asyncio.wait_for(daemon, 10)
        await receiver.cleanup()
