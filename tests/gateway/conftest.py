"""A running trunkline (SIP, RTP, API) in the test's event loop, and real WebSocket agents."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from tests.conftest import marked_settings
from trunkline.config import settings_from
from trunkline.crypto import hash_token, new_token
from trunkline.daemon import ShutdownSignal
from trunkline.daemon import serve as serve_trunkline
from trunkline.gateway.call_control import GatewayCallControl
from trunkline.gateway.sip_gateway import SipGateway
from trunkline.runtime import Runtime
from trunkline.storage.models import PhoneNumber, new_id, utcnow

NUMBER = "+15550100001"
# For tests that count or compare the caller's frames exactly: no jitter buffer, so the
# agent gets the caller's packets as they come and no concealment frames between or after.
PASS_THROUGH = pytest.mark.settings(jitter_max_ms=0)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_run(
    count: int, low: int, high: int, kinds: tuple[int, ...] = (socket.SOCK_DGRAM,)
) -> int:
    """An even port in [low, high) from which ``count`` consecutive ports were free a
    moment ago, for each socket type of ``kinds`` (UDP by default). Ranges here lie outside
    the fixture's RTP ranges (20000-28399) and below the kernel's ephemeral ports (32768
    up), so no socket a test opens on port 0 (nor any outgoing connection) can take one
    before the process that needs them binds."""
    for _ in range(200):
        first = low + 2 * secrets.randbelow((high - low - count) // 2)
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                for kind in kinds:
                    sock = socket.socket(socket.AF_INET, kind)
                    sockets.append(sock)
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise AssertionError(f"no {count} free ports in a row in {low}-{high}")


def sipp_signalling_port() -> int:
    """sipp's ``-p``, free for UDP and TCP (``-t t1`` binds it for TCP): from 17000-19999,
    where neither another test's port 0 nor an outgoing connection's port can land."""
    return free_port_run(1, 17000, 20000, (socket.SOCK_DGRAM, socket.SOCK_STREAM))


def sipp_media_port() -> int:
    """sipp's ``-mp``: it binds that port and the three above it (audio and video RTP/RTCP)."""
    return free_port_run(4, 30400, 32760)


def audio_mode(connection: ServerConnection, request: Request, response: Response) -> None:
    """The agent's 101 asks for audio both ways (Inkbox's speech modes default on)."""
    response.headers["X-Use-Inkbox-Speech-To-Text"] = "false"
    response.headers["X-Use-Inkbox-Text-To-Speech"] = "false"


@dataclass
class AgentCall:
    """What one call's agent connection saw."""

    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    media_bytes: int = 0
    digits: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class EchoAgent:
    """A WebSocket agent that echoes caller audio back (Inkbox protocol)."""

    url: str = ""
    calls: list[AgentCall] = field(default_factory=list)
    hang_up_after_media: int | None = None  # send stop after this many media frames

    async def handle(self, connection: ServerConnection) -> None:
        call = AgentCall({k.lower(): v for k, v in connection.request.headers.raw_items()})
        self.calls.append(call)
        media_frames = 0
        try:
            async for message in connection:
                frame = json.loads(message)
                event = frame.get("event")
                if event != "media":
                    call.events.append(frame)
                if event == "media":
                    media_frames += 1
                    payload = frame["media"]["payload"]
                    call.media_bytes += len(base64.b64decode(payload))
                    await connection.send(
                        json.dumps({"event": "media", "media": {"payload": payload}})
                    )
                    if media_frames == self.hang_up_after_media:
                        await connection.send(json.dumps({"event": "stop", "reason": "done"}))
                elif event == "dtmf":
                    call.digits.append(frame["dtmf"]["digit"])
        finally:
            call.closed.set()


@pytest.fixture
async def echo_agent() -> AsyncIterator[EchoAgent]:
    agent = EchoAgent()
    async with serve(agent.handle, "127.0.0.1", 0, process_response=audio_mode) as server:
        port = server.sockets[0].getsockname()[1]
        agent.url = f"ws://127.0.0.1:{port}/agent"
        yield agent


@dataclass
class Trunkline:
    services: Runtime
    http_port: int
    sip_port: int
    shutdown: ShutdownSignal
    task: asyncio.Task[None]

    @property
    def gateway(self) -> SipGateway:
        control = self.services.call_control.current
        assert isinstance(control, GatewayCallControl)
        return control.gateway

    async def number(
        self, action: str, url: str | None, e164: str = NUMBER, **extra: Any
    ) -> PhoneNumber:
        repository = self.services.repository
        organization = await repository.create_organization("acme")
        identity = await repository.create_identity(organization.id, "sales", None)
        now = utcnow()
        record = PhoneNumber(
            id=new_id(),
            organization_id=organization.id,
            number=e164,
            type="local",
            status="active",
            incoming_call_action=action,  # type: ignore[arg-type]
            client_websocket_url=url if action == "auto_accept" else extra.pop("ws", None),
            incoming_call_webhook_url=url if action == "webhook" else None,
            agent_identity_id=identity.id,
            state="NY",
            country="US",
            created_at=now,
            updated_at=now,
            **extra,
        )
        return await repository.create_number(record, max_active=10)


STOP_DRAIN_SECONDS = 20.0  # a drain waits for live calls (shutdown_timeout_seconds)
STOP_HURRIED_SECONDS = 10.0  # a hurried shutdown ends them at once


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    """Settings a test module changes (speech tests turn transcription back on)."""
    return {"transcription": "off"}


@pytest.fixture
async def trunkline(
    tmp_path: Path, trunkline_overrides: dict[str, Any], request: pytest.FixtureRequest
) -> AsyncIterator[Trunkline]:
    # Below the kernel's ephemeral range (32768+), where client sockets of other tests live.
    rtp_low = 20000 + (free_port() % 400) * 20
    settings = settings_from(
        {
            "data_dir": tmp_path / "data",
            "host": "127.0.0.1",
            "http_port": free_port(socket.SOCK_STREAM),  # known up front: the public URL
            "sip_host": "127.0.0.1",
            "sip_port": free_port(),
            "rtp_port_min": rtp_low,
            "rtp_port_max": rtp_low + 399,
            "media_address": "127.0.0.1",
            "allow_insecure_urls": True,
            "allow_private_targets": True,
            **trunkline_overrides,
            **marked_settings(request),
        }
    )
    ready: asyncio.Future[tuple[Runtime, int]] = asyncio.get_running_loop().create_future()
    shutdown = ShutdownSignal()
    task = asyncio.create_task(
        serve_trunkline(settings, on_ready=lambda s, p: ready.set_result((s, p)), shutdown=shutdown)
    )
    try:
        services, port = await asyncio.wait_for(ready, 20)
        assert services.sip_address is not None
        yield Trunkline(services, port, services.sip_address[1], shutdown, task)
    finally:
        await stop_fully(task, shutdown)


async def stop_fully(task: asyncio.Task[None], shutdown: ShutdownSignal) -> None:
    """Stop a served trunkline whatever its test left behind, and only then return.

    A drain first (what SIGTERM asks for), then haste (a second signal: live calls are
    ended), then cancellation; each stage waits for the task to finish, so the sockets,
    numbers and files of this instance are gone before the next test on this worker
    starts. A task the test already stopped or cancelled is only checked, never awaited
    (awaiting a cancelled task would raise CancelledError into the fixture's teardown).
    A start-up or shutdown that raised fails the test with its own exception.
    """
    stages = ((shutdown.requested, STOP_DRAIN_SECONDS), (shutdown.hurried, STOP_HURRIED_SECONDS))
    for signal_, seconds in stages:
        signal_.set()
        await asyncio.wait({task}, timeout=seconds)
        if task.done():
            break
    else:
        task.cancel()
        await asyncio.wait({task})  # returns once its unwinding is over, without raising
        raise AssertionError(
            f"trunkline did not stop within {STOP_DRAIN_SECONDS + STOP_HURRIED_SECONDS} s"
            " of a drain and then a hurried shutdown; it was cancelled"
        )
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error


class MarkingAgent:
    """Sends three 100 ms bursts of audio, each followed by a mark; records what comes back."""

    def __init__(self) -> None:
        self.url = ""
        self.marks: list[tuple[str, float]] = []
        self.sent_at = 0.0
        self.done = asyncio.Event()

    async def handle(self, connection: ServerConnection) -> None:
        async for message in connection:
            frame: dict[str, Any] = json.loads(message)
            if frame.get("event") == "start":
                self.sent_at = time.monotonic()
                for index in range(3):
                    audio = base64.b64encode(bytes([0x20 + index]) * 800).decode()
                    await connection.send(
                        json.dumps({"event": "media", "media": {"payload": audio}})
                    )
                    await connection.send(
                        json.dumps({"event": "mark", "mark": {"name": f"m{index}"}})
                    )
            elif frame.get("event") == "mark":
                self.marks.append((frame["mark"]["name"], time.monotonic() - self.sent_at))
                if len(self.marks) == 3:
                    self.done.set()


@pytest.fixture
async def marking_agent() -> AsyncIterator[MarkingAgent]:
    agent = MarkingAgent()
    async with serve(agent.handle, "127.0.0.1", 0, process_response=audio_mode) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agent"
        yield agent


@dataclass
class Api:
    http: aiohttp.ClientSession
    base: str

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.http.post(self.base + path, json=body) as response:
            return response.status, await response.json()

    async def get(self, path: str) -> Any:
        async with self.http.get(self.base + path) as response:
            assert response.status == 200
            return await response.json()


@pytest.fixture
async def api(trunkline: Trunkline) -> AsyncIterator[Api]:
    repository = trunkline.services.repository
    organization = await repository.create_organization("acme")
    await repository.create_identity(organization.id, "sales", None)
    token = new_token()
    await repository.create_token(organization.id, None, hash_token(token))
    async with aiohttp.ClientSession(headers={"X-API-Key": token}) as http:
        yield Api(http, f"http://127.0.0.1:{trunkline.http_port}/api/v1/phone")
