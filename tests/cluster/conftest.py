"""The cluster tests' fixtures: a PostgreSQL database of their own, an echo agent, a webhook
receiver, and the real components they need (Kamailio, PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiohttp import web
from websockets.asyncio.server import serve

from tests.backends import postgres_test_url
from tests.cluster.harness import kamailio_binary
from tests.conftest import require
from tests.gateway.conftest import EchoAgent, audio_mode
from tests.webhook_server import serving_hook


@pytest.fixture
def kamailio() -> str:
    binary = kamailio_binary()
    require(binary is not None, "kamailio (Debian package kamailio)")
    assert binary is not None
    return binary


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A fresh database on the test PostgreSQL server, dropped afterwards."""
    server = await postgres_test_url()
    name = f"cluster_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def echo_agent() -> AsyncIterator[EchoAgent]:
    agent = EchoAgent()
    async with serve(agent.handle, "127.0.0.1", 0, process_response=audio_mode) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        yield agent


@dataclass
class WebhookReceiver:
    """Every webhook delivered, by event type and call id."""

    url: str = ""
    events: list[dict[str, object]] = field(default_factory=list)

    def of_call(self, event_type: str, call_id: str) -> list[dict[str, object]]:
        """The deliveries of ``event_type`` about the call ``call_id``, in arrival order."""
        return [
            event
            for event in self.events
            if event.get("event_type") == event_type and call_of(event) == call_id
        ]

    def ended(self, call_id: str) -> int:
        return len(self.of_call("call.ended", call_id))

    async def handle(self, request: web.Request) -> web.Response:
        self.events.append(json.loads(await request.read()))
        return web.Response(status=204)


def call_of(event: dict[str, object]) -> object:
    """The call an event is about: ``data.id`` of call events, ``data.call_id`` of the others."""
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    return (
        data.get("id") if str(event.get("event_type")).startswith("call.") else data.get("call_id")
    )


@pytest.fixture
async def webhooks() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    async with serving_hook(receiver.handle) as receiver.url:
        yield receiver
