"""Two real ``trunkline serve`` processes on one PostgreSQL: what they share and what survives ``kill -9``.

Each node has its own data directory (its own node id), HTTP and SIP ports;
they share the database and the secret key. A carrier (``CarrierCall``) calls
node A, a real WebSocket agent answers, and a webhook receiver records every
event it accepts. The receiver can hold the requests of one process: it tells
who sent a request by the socket's owner in ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.backends import postgres_schema, postgres_test_url
from tests.gateway.conftest import NUMBER, EchoAgent, free_port
from tests.gateway.sip_peer import CarrierCall
from tests.test_daemon import wait_http
from tests.webhook_server import serving_hook
from trunkline.crypto import hash_token, new_token
from trunkline.storage.models import Call, PhoneNumber, WebhookSubscription, new_id, utcnow
from trunkline.storage.postgres import PostgresRepository

SECRET_KEY = "cluster-test-secret-key-0123456789abcdef"
NODE_LEASE_SECONDS = 2
WEBHOOK_LEASE_SECONDS = 4
A_WEBHOOK_LEASE_SECONDS = 12  # node a's, in the kill test: long enough for b to start


def socket_owned_by(pid: int, local_port: int) -> bool:
    """True when process ``pid`` holds the TCP socket bound to ``local_port`` on loopback."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(fields[9])
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return True
    return False


@dataclass
class Receiver:
    """A webhook endpoint: answers 200 and records the event; holds requests of ``held_pid``."""

    url: str = ""
    accepted: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    held_pid: int | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        envelope = json.loads(await request.read())
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if self.held_pid is not None and peer and socket_owned_by(self.held_pid, peer[1]):
            self.held.append(envelope)
            await asyncio.wait_for(self.release.wait(), 120)  # its sender is killed meanwhile
            return web.Response(status=503)
        self.accepted.append(envelope)
        return web.Response(text="ok")

    def events(self, event_type: str, call_id: str) -> list[dict[str, Any]]:
        return [
            e for e in self.accepted if e["event_type"] == event_type and e["data"]["id"] == call_id
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving_hook(receiver.handle) as receiver.url:
        try:
            yield receiver
        finally:
            receiver.release.set()  # held requests answer before the server goes


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    http_port: int
    sip_port: int
    log: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/v1/phone"


@dataclass
class Cluster:
    repository: PostgresRepository
    database_url: str
    organization_id: str
    token: str
    tmp_path: Path
    nodes: list[Node] = field(default_factory=list)

    def start(self, name: str, **settings: str) -> Node:
        http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
        rtp_low = 24000 + (free_port() % 200) * 20  # below the ephemeral range
        data_dir = self.tmp_path / name
        log = self.tmp_path / f"{name}.log"
        env = dict(
            os.environ,
            TRUNKLINE_DATA_DIR=str(data_dir), TRUNKLINE_DATABASE_URL=self.database_url,
            TRUNKLINE_SECRET_KEY=SECRET_KEY, TRUNKLINE_HOST="127.0.0.1",
            TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_SIP_HOST="127.0.0.1",
            TRUNKLINE_SIP_PORT=str(sip_port), TRUNKLINE_MEDIA_ADDRESS="127.0.0.1",
            TRUNKLINE_RTP_PORT_MIN=str(rtp_low), TRUNKLINE_RTP_PORT_MAX=str(rtp_low + 19),
            TRUNKLINE_ALLOW_INSECURE_URLS="1", TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
            TRUNKLINE_TRANSCRIPTION="off",
            TRUNKLINE_NODE_LEASE_SECONDS=str(NODE_LEASE_SECONDS),
            TRUNKLINE_WEBHOOK_LEASE_SECONDS=str(WEBHOOK_LEASE_SECONDS),
            TRUNKLINE_WEBHOOK_TIMEOUT_SECONDS="2",
            TRUNKLINE_MAX_CALLS_PER_ORG="1", TRUNKLINE_MAX_NUMBERS_PER_ORG="3",
        )  # fmt: skip
        env.update(settings)
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "trunkline", "serve"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = Node(name, process, http_port, sip_port, log)
        self.nodes.append(node)
        return node

    async def ready(self, *nodes: Node) -> None:
        for node in nodes:
            try:
                await asyncio.to_thread(wait_http, f"http://127.0.0.1:{node.http_port}/healthz", 60)
            except OSError:
                raise AssertionError(
                    f"{node.name} did not start:\n{node.log.read_text()}"
                ) from None

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGTERM)
        for node in self.nodes:
            try:
                node.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait()


@pytest.fixture
async def cluster(
    tmp_path: Path, echo_agent: EchoAgent, receiver: Receiver
) -> AsyncIterator[Cluster]:
    url = await postgres_test_url()
    async with postgres_schema() as schema:
        repository = await PostgresRepository.open(url, search_path=schema, max_size=2)
        try:
            await repository.migrate()
            organization = await repository.create_organization("acme")
            identity = await repository.create_identity(organization.id, "sales", None)
            now = utcnow()
            await repository.create_number(
                PhoneNumber(
                    id=new_id(), organization_id=organization.id, number=NUMBER, type="local",
                    status="active", incoming_call_action="auto_accept",
                    client_websocket_url=echo_agent.url, incoming_call_webhook_url=None,
                    agent_identity_id=identity.id, state="NY", country="US",
                    created_at=now, updated_at=now,
                ),
                max_active=10,
            )  # fmt: skip
            await repository.create_subscription(
                WebhookSubscription(
                    id=new_id(), organization_id=organization.id, agent_identity_id=identity.id,
                    phone_number_id=None, url=receiver.url,
                    event_types=["call.started", "call.ended"], status="active",
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            token = new_token()
            await repository.create_token(organization.id, None, hash_token(token))
            cluster = Cluster(
                repository, f"{url}?search_path={schema}", organization.id, token, tmp_path
            )
            try:
                yield cluster
            finally:
                await asyncio.to_thread(cluster.stop_all)
        finally:
            await repository.close()


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def the_live_call(cluster: Cluster) -> Call:
    (call,) = await cluster.repository.list_calls(cluster.organization_id, live=True)
    return call


async def test_kill_9_of_a_node_ends_its_call_on_the_survivor_and_loses_no_webhook(
    cluster: Cluster, receiver: Receiver
) -> None:
    # a's webhook requests get no answer, and it waits for one (almost) as long as it may.
    node_a = cluster.start(
        "a",
        TRUNKLINE_WEBHOOK_LEASE_SECONDS=str(A_WEBHOOK_LEASE_SECONDS),
        TRUNKLINE_WEBHOOK_TIMEOUT_SECONDS=str(A_WEBHOOK_LEASE_SECONDS - 2),
    )
    await cluster.ready(node_a)
    receiver.held_pid = node_a.process.pid
    carrier = await CarrierCall.open(node_a.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        call = await the_live_call(cluster)
        assert call.owner is not None and call.owner.endswith(":0")
        await until(lambda: bool(receiver.held), 15, "node a to send call.started")
        leased_at = asyncio.get_running_loop().time()
        assert receiver.held[0]["event_type"] == "call.started"
        node_b = cluster.start("b")  # b starts once a holds the delivery's lease
        await cluster.ready(node_b)
        second = await CarrierCall.open(node_b.sip_port)
        # The organisation's one call is on a: node b refuses a second one.
        busy = await second.invite(NUMBER)
        assert (busy.status, busy.headers.get("Retry-After")) == (503, "30")

        node_a.process.send_signal(signal.SIGKILL)  # a dies holding call.started's lease
        await asyncio.to_thread(node_a.process.wait, 10)
        receiver.held_pid = None

        await until(
            lambda: bool(receiver.events("call.ended", call.id)), 30, "call.ended from node b"
        )
        await until(
            lambda: bool(receiver.events("call.started", call.id)),
            A_WEBHOOK_LEASE_SECONDS + 20,
            "a's leased call.started, taken over by b",
        )
        # Not before a's lease ran out (it was taken a moment before it was seen held).
        assert asyncio.get_running_loop().time() >= leased_at + A_WEBHOOK_LEASE_SECONDS - 1
        await asyncio.sleep(WEBHOOK_LEASE_SECONDS)  # time for a duplicate to show up, if any
        (ended,) = receiver.events("call.ended", call.id)
        (started,) = receiver.events("call.started", call.id)
        assert started["id"] == receiver.held[0]["id"]  # the same event a was sending
        assert ended["data"]["status"] == "completed"
        assert ended["data"]["hangup_reason"] == "node_lost"
        stored = await cluster.repository.get_call(call.id)
        assert stored is not None
        assert (stored.status, stored.hangup_reason) == ("completed", "node_lost")
        assert stored.ended_at is not None and stored.started_at is not None
        assert stored.ended_at >= stored.started_at
        assert await cluster.repository.pending_deliveries() == 0
        nodes = [n.id for n in await cluster.repository.list_nodes()]
        assert len(nodes) == 1 and call.owner not in nodes  # a is forgotten; b is left
        # The place a's call held is free again: b takes a new call.
        again = await CarrierCall.open(node_b.sip_port)
        try:
            assert (await again.invite(NUMBER)).status == 200
            assert (await again.bye(NUMBER)).status == 200
        finally:
            again.close()
        second.close()
    finally:
        carrier.close()
    assert "ended 1 calls it left live" in node_b.log.read_text()


async def test_api_hang_up_on_one_node_reaches_the_node_carrying_the_call(
    cluster: Cluster,
) -> None:
    node_a = cluster.start("a")
    node_b = cluster.start("b")
    await cluster.ready(node_a, node_b)
    carrier = await CarrierCall.open(node_a.sip_port)
    headers = {"X-API-Key": cluster.token}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            assert (await carrier.invite(NUMBER)).status == 200
            call = await the_live_call(cluster)
            hangup = http.post(f"{node_b.api}/calls/{call.id}/hangup")
            bye = asyncio.create_task(carrier.expect_request("BYE", 10))
            async with hangup as response:
                body = await response.json()
            assert response.status == 200, body
            assert body["status"] == "completed" and body["hangup_reason"] == "local"
            await bye  # node a, which carries the call, sent the BYE
            stored = await cluster.repository.get_call(call.id)
            assert stored is not None and stored.status == "completed"

            # Provisioning on both nodes at once: the cap (3, one held) holds across them.
            async def provision(node: Node) -> int:
                async with http.post(
                    f"{node.api}/numbers", json={"agent_handle": "sales"}
                ) as answer:
                    await answer.read()
                    return answer.status

            statuses = await asyncio.gather(*(provision(n) for n in [node_a, node_b] * 3))
            assert sorted(statuses) == [201, 201, 429, 429, 429, 429], statuses
            numbers = await cluster.repository.list_numbers(cluster.organization_id)
            assert len(numbers) == 3
    finally:
        carrier.close()


async def test_a_drained_node_loses_no_call_record_and_no_webhook(
    cluster: Cluster, receiver: Receiver
) -> None:
    node_a = cluster.start("a", TRUNKLINE_SHUTDOWN_TIMEOUT_SECONDS="1")
    await cluster.ready(node_a)
    receiver.held_pid = node_a.process.pid  # nothing a sends is answered
    carrier = await CarrierCall.open(node_a.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        call = await the_live_call(cluster)
        await until(lambda: bool(receiver.held), 15, "node a to send call.started")
        node_b = cluster.start("b")
        await cluster.ready(node_b)
        node_a.process.send_signal(signal.SIGTERM)  # drain: the call is ended after 1 s
        await carrier.expect_request("BYE", 15)
        assert await asyncio.to_thread(node_a.process.wait, 30) == 0
        receiver.held_pid = None
        await until(
            lambda: (
                bool(receiver.events("call.ended", call.id))
                and bool(receiver.events("call.started", call.id))
            ),
            40,
            "node b to deliver what node a could not",
        )
        await asyncio.sleep(2)  # time for a duplicate to show up, if any
        assert len(receiver.events("call.started", call.id)) == 1
        (ended,) = receiver.events("call.ended", call.id)
        assert (ended["data"]["status"], ended["data"]["hangup_reason"]) == ("completed", "local")
        stored = await cluster.repository.get_call(call.id)
        assert stored is not None and stored.status == "completed"
        nodes = [n.id for n in await cluster.repository.list_nodes()]
        assert len(nodes) == 1 and call.owner not in nodes  # a left cleanly
    finally:
        carrier.close()
