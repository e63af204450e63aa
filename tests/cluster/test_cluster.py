"""trunkline as a cluster: Kamailio (the shipped configuration) in front of real nodes on
127.0.0.2 and 127.0.0.3, one PostgreSQL behind them.

Calls are placed through Kamailio by the test caller (``trunkline.testcall``, the
gateway's own sans-I/O UAC: it follows the Record-Route set, so ACK and BYE go
through Kamailio too), each playing numbered μ-law frames that the echo agent
sends back; a call is echoed when every numbered frame came back. Hang-ups over
the REST API are sent to the node that does not carry the call. One node is
drained mid-run (SIGTERM), and in the other test one is killed (SIGKILL).

Neither loses anything: every call placed has exactly one stored record, ended,
with the reason it ended for; every event the subscription asks for
(``call.started``, ``call.ended``, ``recording.ready``) is stored once per call
and reaches the loopback webhook receiver once; and the outbox is left with
nothing pending or leased.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.cluster.conftest import WebhookReceiver, call_of
from tests.cluster.harness import (
    NODE_HOSTS,
    PING_INTERVAL_SECONDS,
    Kamailio,
    Node,
    frame_numbers,
    make_node,
    numbered_frame,
)
from tests.gateway.conftest import NUMBER, EchoAgent
from tests.gateway.test_recording_crash import seed_number_into
from trunkline.crypto import hash_token, new_token
from trunkline.gateway.sip.message import SipRequest
from trunkline.storage.models import Call
from trunkline.storage.postgres import PostgresRepository
from trunkline.testcall.caller import CallOptions, TestCall
from trunkline.testcall.summary import CallSummary

pytestmark = pytest.mark.postgres

ECHO_FRAMES = 40  # numbered frames each call plays (0.8 s)
BATCH = 20  # calls in flight at once
SHORT_CALL_SECONDS = 2.5
# Each call's numbered frames are counted exactly: no caller jitter buffer, whose late,
# shrink and overflow drops (by design, on a busy machine) would count as frames lost.
PASS_THROUGH = {"jitter_max_ms": "0"}
SUBSCRIBED_EVENTS = ("call.started", "call.ended", "recording.ready")  # each once per call


@dataclass
class Cluster:
    nodes: list[Node]
    kamailio: Kamailio
    repository: PostgresRepository
    organization_id: str
    token: str
    database_url: str

    def node_of(self, call: Call) -> Node:
        return next(node for node in self.nodes if node.owner == call.owner)

    async def calls(self) -> list[Call]:
        found: list[Call] = []
        while True:
            page = await self.repository.list_calls(
                self.organization_id, limit=200, offset=len(found)
            )
            found += page
            if len(page) < 200:
                return found

    async def call_by_sip_id(self, sip_call_id: str, seconds: float = 10.0) -> Call:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            for call in await self.repository.list_calls(self.organization_id, limit=100):
                if call.sip_call_id == sip_call_id:
                    return call
            assert loop.time() < deadline, f"no call record for {sip_call_id}"
            await asyncio.sleep(0.1)


class RoutedCall(TestCall):
    """The test caller, noting where each request it receives came from."""

    __test__ = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests_from: list[tuple[str, tuple[str, int]]] = []

    @property
    def media_address(self) -> str | None:
        """Where the SDP answer told the caller to send RTP."""
        return self._remote_media[0] if self._remote_media is not None else None

    def _request_received(self, request: SipRequest, source: tuple[str, int]) -> None:
        self.requests_from.append((request.method, source))
        super()._request_received(request, source)


class Caller:
    """One test call through Kamailio; ``hang_up`` ends it early, ``call_id`` is its SIP Call-ID."""

    def __init__(self, cluster: Cluster, seconds: float) -> None:
        options = CallOptions(
            number=NUMBER, host=cluster.kamailio.address[0], port=cluster.kamailio.address[1],
            seconds=seconds, answer_timeout=15.0,
        )  # fmt: skip
        self.hang_up = asyncio.Event()
        frames = [numbered_frame(n) for n in range(ECHO_FRAMES)]
        self.call = RoutedCall(options, frames, self.hang_up)
        self.task: asyncio.Task[CallSummary] = asyncio.create_task(self.call.run())

    @property
    def call_id(self) -> str:
        call_id = self.call.call_id
        assert call_id is not None
        return call_id

    async def answered(self, seconds: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.call.summary.answered:
            assert not self.task.done(), f"not answered: {self.call.summary.lines()}"
            assert loop.time() < deadline, "not answered in time"
            await asyncio.sleep(0.05)

    async def summary(self) -> CallSummary:
        return await asyncio.wait_for(self.task, 60)

    def missing_frames(self) -> set[int]:
        return set(range(ECHO_FRAMES)) - frame_numbers(self.call.media.recording)


async def place_batch(cluster: Cluster, count: int, seconds: float) -> list[Caller]:
    """``count`` calls at once, each played to its end; every one answered and fully echoed."""
    callers = [Caller(cluster, seconds) for _ in range(count)]
    summaries = await asyncio.gather(*(caller.summary() for caller in callers))
    for caller, summary in zip(callers, summaries, strict=True):
        assert summary.answered, summary.lines()
        assert summary.hung_up_by == "caller", summary.lines()
        assert not caller.missing_frames(), (
            f"frames not echoed: {sorted(caller.missing_frames())}",
            summary.lines(),
        )
    return callers


@asynccontextmanager
async def running_cluster(
    tmp_path: Path,
    kamailio_binary: str,
    database_url: str,
    agent: EchoAgent,
    webhooks: WebhookReceiver,
    nodes: int,
    ping_interval: int = PING_INTERVAL_SECONDS,
    settings: dict[str, str] | None = None,
) -> AsyncIterator[Cluster]:
    secret_key = secrets.token_urlsafe(32)
    members = [
        make_node(
            f"node-{letter}",
            host,
            tmp_path,
            database_url,
            secret_key,
            **(PASS_THROUGH | (settings or {})),
        )
        for letter, host in zip("abc"[:nodes], NODE_HOSTS[:nodes], strict=True)
    ]
    kamailio = Kamailio(members, tmp_path, ping_interval)
    repository = await PostgresRepository.open(database_url, max_size=4)
    try:
        await repository.migrate()  # once, before the nodes start
        organization_id = await seed_number_into(repository, agent.url)
        token = new_token()
        await repository.create_token(organization_id, None, hash_token(token))
        for node in members:
            node.start()
        for node in members:
            await asyncio.to_thread(node.wait_ready)
        cluster = Cluster(members, kamailio, repository, organization_id, token, database_url)
        await subscribe(cluster, webhooks.url)
        kamailio.start(kamailio_binary)
        await asyncio.sleep(min(ping_interval, PING_INTERVAL_SECONDS) + 0.5)  # first probes
        yield cluster
    except BaseException:
        for node in members:
            print(f"--- {node.name} log ---\n{node.log_tail()}")
        print(f"--- kamailio log ---\n{kamailio.log_tail()}")
        raise
    finally:
        kamailio.stop()
        await asyncio.gather(*(asyncio.to_thread(node.stop) for node in members))
        await repository.close()


async def subscribe(cluster: Cluster, url: str) -> None:
    identity = (await cluster.repository.list_identities(cluster.organization_id))[0]
    async with (
        aiohttp.ClientSession(headers={"X-API-Key": cluster.token}) as http,
        http.post(
            f"{cluster.nodes[0].base_url}/api/v1/webhooks/subscriptions",
            json={
                "url": url,
                "event_types": list(SUBSCRIBED_EVENTS),
                "agent_identity_id": identity.id,
            },
        ) as response,
    ):
        assert response.status == 201, await response.text()


async def node_down(cluster: Cluster, node: Node) -> None:
    """Kamailio's dispatcher took ``node`` out of the set within a few probe intervals."""

    async def logged() -> bool:
        return f"node down: {node.sip_uri}" in cluster.kamailio.log_tail(100_000)

    # A probe's answer, or its timeout (Kamailio's FR_TIMER_MS, 2 s), with room for a busy host.
    await wait_for(f"kamailio to mark {node.name} down", logged, PING_INTERVAL_SECONDS + 8)


async def api_hangup(cluster: Cluster, node: Node, call_id: str) -> None:
    async with (
        aiohttp.ClientSession(headers={"X-API-Key": cluster.token}) as http,
        http.post(f"{node.base_url}/api/v1/phone/calls/{call_id}/hangup", json={}) as response,
    ):
        assert response.status == 200, await response.text()


async def wait_for(condition_name: str, check: object, seconds: float) -> None:
    """Poll the async predicate ``check`` until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {condition_name}"
        await asyncio.sleep(0.2)


async def outbox_states(cluster: Cluster) -> Counter[str]:
    """The webhook deliveries by state (``pending`` counts the leased ones too)."""
    connection = await asyncpg.connect(cluster.database_url)
    try:
        rows = await connection.fetch(
            "SELECT state, count(*) AS n FROM webhook_deliveries GROUP BY state"
        )
    finally:
        await connection.close()
    return Counter({row["state"]: int(row["n"]) for row in rows})


async def stored_events(cluster: Cluster) -> Counter[tuple[str, str]]:
    """The outbox's events of the subscribed types, by type and call."""
    connection = await asyncpg.connect(cluster.database_url)
    try:
        rows = await connection.fetch(
            "SELECT event_type, COALESCE(data->>'call_id', data->>'id') AS call_id FROM events"
            " WHERE event_type = ANY($1::text[])",
            list(SUBSCRIBED_EVENTS),
        )
    finally:
        await connection.close()
    return Counter((row["event_type"], row["call_id"]) for row in rows)


async def outbox_idle(cluster: Cluster, webhooks: WebhookReceiver, calls: Iterable[Call]) -> None:
    """Every ``call.started`` of ``calls`` delivered and nothing pending: no delivery in flight."""
    wanted = [call.id for call in calls]

    async def idle() -> bool:
        if not all(webhooks.of_call("call.started", call_id) for call_id in wanted):
            return False
        return (await outbox_states(cluster)).get("pending", 0) == 0

    await wait_for("call.started of the live calls and an idle outbox", idle, 20)


async def nothing_lost(
    cluster: Cluster,
    webhooks: WebhookReceiver,
    placed: Iterable[Caller],
    reasons: dict[str, str],
    seconds: float = 30.0,
) -> None:
    """No call record and no webhook lost, none duplicated, nothing left in the outbox.

    Every call ``placed`` has exactly one stored record (and no other call has
    one): ended (``completed``, ``ended_at`` set) with the hang-up reason
    ``reasons`` gives for its SIP Call-ID (``remote``, the caller's BYE, for the
    others). Each subscribed event of each call is stored once and reaches the
    receiver once, ``call.ended`` with the stored reason; within ``seconds`` the
    outbox has no delivery pending or leased, and none failed.
    """
    sip_ids = [caller.call_id for caller in placed]
    calls = await cluster.calls()
    stored = Counter(call.sip_call_id for call in calls)
    assert stored == Counter(sip_ids), f"call records by SIP Call-ID: {stored}"
    assert len(calls) == len(set(sip_ids))
    expected_reasons = Counter(reasons.get(sip_id, "remote") for sip_id in sip_ids)
    assert Counter(call.hangup_reason for call in calls) == expected_reasons
    for call in calls:
        assert call.status == "completed" and call.ended_at is not None, call
        assert call.hangup_reason == reasons.get(call.sip_call_id or "", "remote"), call

    wanted = Counter((event_type, call.id) for event_type in SUBSCRIBED_EVENTS for call in calls)

    async def settled() -> bool:
        if not all(webhooks.of_call(event_type, call_id) for event_type, call_id in wanted):
            return False
        return (await outbox_states(cluster)).get("pending", 0) == 0

    await wait_for("every webhook delivered and nothing pending", settled, seconds)
    await asyncio.sleep(1.0)  # a duplicate would arrive about now
    assert await stored_events(cluster) == wanted, "an event stored twice, or not at all"
    received = Counter((str(event["event_type"]), call_of(event)) for event in webhooks.events)
    duplicates = {key: count for key, count in received.items() if count > 1}
    assert not duplicates, f"webhooks delivered more than once: {duplicates}"
    assert received == wanted
    assert await outbox_states(cluster) == {"delivered": len(wanted)}
    for call in calls:
        (ended,) = webhooks.of_call("call.ended", call.id)
        data = ended["data"]
        assert isinstance(data, dict) and data["hangup_reason"] == call.hangup_reason, data


async def every_call_ended_once(
    cluster: Cluster, webhooks: WebhookReceiver, calls: Iterable[Call], seconds: float = 30.0
) -> None:
    wanted = [call.id for call in calls]

    async def delivered() -> bool:
        return all(webhooks.ended(call_id) >= 1 for call_id in wanted)

    await wait_for("call.ended for every call", delivered, seconds)
    await asyncio.sleep(1.0)  # a duplicate would arrive about now
    duplicates = {
        call_id: webhooks.ended(call_id) for call_id in wanted if webhooks.ended(call_id) > 1
    }
    assert not duplicates, f"call.ended sent more than once: {duplicates}"


@pytest.mark.timeout(300)
async def test_calls_spread_over_nodes_echo_hang_up_across_nodes_and_survive_a_drain(
    tmp_path: Path,
    kamailio: str,
    database_url: str,
    echo_agent: EchoAgent,
    webhooks: WebhookReceiver,
) -> None:
    async with running_cluster(
        tmp_path, kamailio, database_url, echo_agent, webhooks, nodes=2
    ) as cluster:
        node_a, node_b = cluster.nodes
        # 1. 80 calls, 20 at a time: all answered, all echoed, both nodes carry some.
        placed: list[Caller] = []
        for _ in range(4):
            placed += await place_batch(cluster, BATCH, SHORT_CALL_SECONDS)
        owners = Counter(call.owner for call in await cluster.calls())
        assert set(owners) == {node_a.owner, node_b.owner}, owners
        assert min(owners.values()) >= 20, f"round robin should share the calls: {owners}"

        # 2. A hang-up through the API of the node that does not carry the call.
        held = [Caller(cluster, 30.0) for _ in range(4)]
        for caller in held:
            await caller.answered()
        records = [await cluster.call_by_sip_id(caller.call_id) for caller in held]
        by_node = {
            cluster.node_of(record).name: (caller, record)
            for caller, record in zip(held, records, strict=True)
        }
        assert set(by_node) == {node_a.name, node_b.name}, (
            "round robin put every held call on one node"
        )
        for caller, record in by_node.values():
            # Each node answers with its own media address: RTP bypasses Kamailio.
            assert caller.call.media_address == cluster.node_of(record).host
            other = node_b if cluster.node_of(record) is node_a else node_a
            await api_hangup(cluster, other, record.id)
            summary = await caller.summary()
            assert summary.hung_up_by == "trunkline", summary.lines()
            # The owner's BYE followed the Record-Route set: it came through Kamailio.
            assert caller.call.requests_from == [("BYE", cluster.kamailio.address)]
        for caller in held:
            caller.hang_up.set()
        await asyncio.gather(*(caller.summary() for caller in held))
        hung_up_by_api = {caller.call_id: "local" for caller, _ in by_node.values()}

        # 3. Drain node B mid-run: its live calls finish normally, new calls go to A.
        live = [Caller(cluster, 8.0) for _ in range(BATCH)]
        for caller in live:
            await caller.answered()
        live_records = [await cluster.call_by_sip_id(caller.call_id) for caller in live]
        on_b = [record for record in live_records if cluster.node_of(record) is node_b]
        assert on_b, "no live call on the node to drain"
        node_b.drain()
        await node_down(cluster, node_b)  # its OPTIONS probe is answered 503
        after = await place_batch(cluster, BATCH, SHORT_CALL_SECONDS)  # a 503 fails over
        for caller in after:
            record = await cluster.call_by_sip_id(caller.call_id)
            assert record.owner == node_a.owner, "a call went to the draining node"
        for caller in live:
            summary = await caller.summary()
            assert summary.answered and summary.hung_up_by == "caller", summary.lines()
            assert not caller.missing_frames(), sorted(caller.missing_frames())
        assert node_b.process is not None
        assert await asyncio.to_thread(node_b.process.wait, 30) == 0  # drained, then exited

        # 4. Nothing lost: a record for each call, ended by the caller or the API, and each
        # call's webhooks delivered once (B sent its own before it exited, or A sent them).
        placed += held + live + after
        assert len(placed) == 4 * BATCH + len(held) + 2 * BATCH
        await nothing_lost(cluster, webhooks, placed, hung_up_by_api)


@pytest.mark.timeout(240)
async def test_a_killed_node_leaves_the_set_and_its_calls_are_closed(
    tmp_path: Path,
    kamailio: str,
    database_url: str,
    echo_agent: EchoAgent,
    webhooks: WebhookReceiver,
) -> None:
    lease = {"node_lease_seconds": "3"}  # a survivor takes the dead node's calls over soon
    async with running_cluster(
        tmp_path, kamailio, database_url, echo_agent, webhooks, nodes=2, settings=lease
    ) as cluster:
        node_a, node_b = cluster.nodes
        live = [Caller(cluster, 40.0) for _ in range(6)]
        for caller in live:
            await caller.answered()
        records = [await cluster.call_by_sip_id(caller.call_id) for caller in live]
        on_b = [record for record in records if cluster.node_of(record) is node_b]
        assert on_b, "no live call on the node to kill"
        # Killed with no webhook in flight, so a delivery it had started cannot be sent
        # twice (delivery is at least once): each webhook below must arrive exactly once.
        await outbox_idle(cluster, webhooks, records)

        node_b.kill()
        # Kamailio stops routing to it within the probe interval (and, before that, an
        # INVITE it sends there times out and is tried on the next node).
        await node_down(cluster, node_b)
        after = await place_batch(cluster, 10, SHORT_CALL_SECONDS)
        for caller in after:
            record = await cluster.call_by_sip_id(caller.call_id)
            assert record.owner == node_a.owner
        for caller, record in zip(live, records, strict=True):
            if cluster.node_of(record) is node_b:
                caller.hang_up.set()  # its BYE reaches nobody
        # The calls on A are untouched by B's death.
        for caller, record in zip(live, records, strict=True):
            if cluster.node_of(record) is node_a:
                assert not caller.task.done()
                caller.hang_up.set()
        await asyncio.gather(*(caller.summary() for caller in live))

        # A survivor ends the dead node's calls once its lease has expired.
        async def closed() -> bool:
            ended = [await cluster.repository.get_call(record.id) for record in on_b]
            return all(call is not None and call.ended_at is not None for call in ended)

        await wait_for("the survivor to close the dead node's calls", closed, 30)
        taken_over = [await cluster.repository.get_call(record.id) for record in on_b]
        assert {call.hangup_reason for call in taken_over if call is not None} == {"node_lost"}
        await every_call_ended_once(cluster, webhooks, on_b)

        # The dead node comes back with its data directory: its restart sweep publishes the
        # recordings its calls left (recording.ready), and nothing is lost or sent twice.
        node_b.start()
        await asyncio.to_thread(node_b.wait_ready)
        lost = {caller.call_id: "node_lost" for caller, record in zip(live, records, strict=True)
                if cluster.node_of(record) is node_b}  # fmt: skip
        await nothing_lost(cluster, webhooks, live + after, lost)


@pytest.mark.timeout(180)
async def test_an_invite_a_draining_node_refuses_is_answered_by_another_node(
    tmp_path: Path,
    kamailio: str,
    database_url: str,
    echo_agent: EchoAgent,
    webhooks: WebhookReceiver,
) -> None:
    # Probes far apart: Kamailio still takes the draining node for up, so every other
    # INVITE goes there first and is refused 503 — and must be given to the other node.
    async with running_cluster(
        tmp_path, kamailio, database_url, echo_agent, webhooks, nodes=2, ping_interval=300
    ) as cluster:
        node_a, node_b = cluster.nodes
        held: list[Caller] = []
        while not any(
            cluster.node_of(r) is node_b
            for r in [await cluster.call_by_sip_id(c.call_id) for c in held]
        ):
            caller = Caller(cluster, 40.0)
            await caller.answered()
            held.append(caller)  # a live call keeps the draining node up
        node_b.drain()
        await asyncio.sleep(0.5)  # the signal is handled
        after = await place_batch(cluster, 10, SHORT_CALL_SECONDS)
        for caller in after:
            record = await cluster.call_by_sip_id(caller.call_id)
            assert record.owner == node_a.owner
        refused = cluster.kamailio.log_tail(100_000).count("with 503: trying the next one")
        assert refused >= 4, f"round robin should have offered the draining node calls: {refused}"
        assert "node down" not in cluster.kamailio.log_tail(100_000)  # no probe was involved
        for caller in held:
            caller.hang_up.set()
        await asyncio.gather(*(caller.summary() for caller in held))
