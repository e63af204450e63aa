"""Heartbeats and takeover against both real backends, with a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import soundfile

from tests.backends import BACKENDS, make_repository
from tests.gateway.test_restart_sweep import crash_left_recording
from tests.storage.test_repository import number_record
from trunkline.calls.node_takeover import NodeHeartbeat
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.calls.restart_sweep import end_calls_left_live
from trunkline.crypto import UrlSigner
from trunkline.storage.blobs import LocalBlobStore
from trunkline.storage.models import Call, CallStatus, utcnow
from trunkline.storage.repository import Repository

LEASE = 15.0


@pytest.fixture(params=BACKENDS)
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    async with make_repository(request.param, tmp_path) as repository:
        yield repository


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


async def live_call(repo: Repository, owner: str, status: CallStatus) -> Call:
    org = (await repo.list_organizations())[0]
    (number,) = await repo.list_numbers(org.id)
    call = await repo.create_call(
        Call.initiated(number, remote_phone_number="+14155550123", direction="inbound", owner=owner)
    )
    changes: dict[str, object] = {"status": status}
    if status == "answered":
        changes["started_at"] = call.created_at
    updated = await repo.update_call(call.id, changes)
    assert updated is not None
    return updated


async def seeded(repo: Repository) -> str:
    org = await repo.create_organization("acme")
    await repo.create_number(number_record(org.id, "+15550100001"), max_active=3)
    return org.id


def heartbeat(repo: Repository, owner: str, clock: Clock) -> NodeHeartbeat:
    return NodeHeartbeat(
        repo, owner, f"http://{owner}", LEASE, wake_outbox=lambda: None, clock=clock
    )


def ended_events(events: list[object]) -> list[str]:
    return [e.data["id"] for e in events if e.event_type == "call.ended"]  # type: ignore[attr-defined]


async def test_a_survivor_ends_the_calls_of_a_process_whose_heartbeat_expired(
    repo: Repository, tmp_path: Path
) -> None:
    org_id = await seeded(repo)
    answered = await live_call(repo, "a:0", "answered")
    ringing = await live_call(repo, "a:0", "ringing")
    theirs = await live_call(repo, "b:0", "answered")
    clock = Clock(utcnow())
    node_b = heartbeat(repo, "b:0", clock)
    await repo.register_node("a:0", "http://a", clock.now)
    await repo.register_node("b:0", "http://b", clock.now)
    a_last_seen = clock.now

    clock.now += timedelta(seconds=LEASE - 1)
    assert await node_b.round() == 0  # a is late, not dead
    clock.now += timedelta(seconds=2)
    assert await node_b.round() == 1  # a has not beaten for longer than the lease

    completed = await repo.get_call(answered.id)
    assert completed is not None
    assert (completed.status, completed.hangup_reason) == ("completed", "node_lost")
    assert completed.ended_at == a_last_seen  # its last sign of life
    failed = await repo.get_call(ringing.id)
    assert failed is not None and (failed.status, failed.hangup_reason) == ("failed", "node_lost")
    assert failed.failure_detail
    assert await repo.get_call(theirs.id) == theirs  # the survivor's own call goes on
    assert [n.id for n in await repo.list_nodes()] == ["b:0"]  # a is forgotten
    assert await node_b.round() == 0  # nothing left to take over

    # a comes back (same owner name): its restart sweep finds nothing left to end.
    publisher = RecordingPublisher(repo, None, lambda: None)  # type: ignore[arg-type]
    assert await end_calls_left_live(repo, publisher, tmp_path, "a:0") == 0
    events = await repo.list_events(org_id)
    assert sorted(ended_events(events)) == sorted([answered.id, ringing.id])  # once each


async def test_two_survivors_take_a_dead_process_over_once(repo: Repository) -> None:
    org_id = await seeded(repo)
    clock = Clock(utcnow())
    for owner in ("a:0", "b:0", "c:0"):
        await repo.register_node(owner, None, clock.now)
    calls = [await live_call(repo, "a:0", "answered") for _ in range(6)]
    clock.now += timedelta(seconds=LEASE + 1)
    await repo.beat("b:0", clock.now)
    await repo.beat("c:0", clock.now)
    taken = await asyncio.gather(
        heartbeat(repo, "b:0", clock).round(), heartbeat(repo, "c:0", clock).round()
    )
    assert sorted(taken) == [0, 1]
    events = await repo.list_events(org_id)
    assert sorted(ended_events(events)) == sorted(c.id for c in calls)


async def test_a_claim_left_by_a_survivor_that_died_expires(repo: Repository) -> None:
    await seeded(repo)
    clock = Clock(utcnow())
    await repo.register_node("a:0", None, clock.now)
    call = await live_call(repo, "a:0", "answered")
    clock.now += timedelta(seconds=LEASE + 1)
    claimed = await repo.claim_lost_node(clock.now, LEASE, "b:0")  # …and b dies here
    assert claimed is not None and claimed.id == "a:0"
    assert await repo.claim_lost_node(clock.now, LEASE, "c:0") is None  # b's claim holds
    clock.now += timedelta(seconds=LEASE + 1)
    await repo.register_node("c:0", None, clock.now)
    assert await heartbeat(repo, "c:0", clock).round() == 1
    ended = await repo.get_call(call.id)
    assert ended is not None and ended.hangup_reason == "node_lost"


async def test_a_process_declared_lost_hangs_up_and_registers_again(repo: Repository) -> None:
    await seeded(repo)
    clock = Clock(utcnow())
    node_a = heartbeat(repo, "a:0", clock)
    hung_up: list[str] = []

    async def end_local_calls() -> None:
        hung_up.append("all")

    node_a.on_declared_lost = end_local_calls
    await repo.register_node("a:0", None, clock.now)
    await repo.register_node("b:0", None, clock.now)
    await live_call(repo, "a:0", "answered")
    clock.now += timedelta(seconds=LEASE + 1)  # a stalls (a long pause, a partition)
    await repo.beat("b:0", clock.now)
    assert await heartbeat(repo, "b:0", clock).round() == 1
    assert await node_a.round() == 0  # a wakes up: it learns it was declared lost
    assert hung_up == ["all"]
    assert {n.id for n in await repo.list_nodes()} == {"a:0", "b:0"}
    assert await node_a.round() == 0 and hung_up == ["all"]  # once


async def test_leaving_cleanly_removes_the_row(repo: Repository) -> None:
    clock = Clock(utcnow())
    node = heartbeat(repo, "a:0", clock)
    await node.start()
    assert [n.id for n in await repo.list_nodes()] == ["a:0"]
    await node.close()
    assert await repo.list_nodes() == []


async def test_the_lost_process_publishes_its_recording_when_it_comes_back(
    repo: Repository, tmp_path: Path
) -> None:
    org_id = await seeded(repo)
    call = await live_call(repo, "a:0", "answered")
    partial = crash_left_recording(tmp_path, call.id)  # a was killed mid-call
    clock = Clock(utcnow())
    await repo.register_node("a:0", None, clock.now)
    clock.now += timedelta(seconds=LEASE + 1)
    await repo.register_node("b:0", None, clock.now)
    assert await heartbeat(repo, "b:0", clock).round() == 1  # b ends a's call

    blobs = LocalBlobStore(tmp_path / "blobs", UrlSigner(b"k" * 32), "http://127.0.0.1")
    publisher = RecordingPublisher(repo, blobs, lambda: None)
    assert await end_calls_left_live(repo, publisher, tmp_path / "recordings", "a:0") == 0
    stored = await repo.get_call(call.id)
    assert stored is not None and stored.hangup_reason == "node_lost"
    assert stored.recording_key == f"recordings/{call.id}.wav"
    assert not partial.exists()
    assert soundfile.info(str(blobs.path_for(stored.recording_key))).frames == 12000
    events = await repo.list_events(org_id)
    assert [e.data["call_id"] for e in events if e.event_type == "recording.ready"] == [call.id]
    assert ended_events(events) == [call.id]
    # Run again (another restart): nothing more is published.
    assert await end_calls_left_live(repo, publisher, tmp_path / "recordings", "a:0") == 0
    assert (
        len([e for e in await repo.list_events(org_id) if e.event_type == "recording.ready"]) == 1
    )


async def test_a_process_whose_own_heartbeat_was_late_gives_the_others_a_beat_first(
    repo: Repository,
) -> None:
    await seeded(repo)
    call = await live_call(repo, "a:0", "answered")
    clock = Clock(utcnow())
    await repo.register_node("a:0", None, clock.now)
    await repo.register_node("b:0", None, clock.now)
    node_b = heartbeat(repo, "b:0", clock)
    assert await node_b.round() == 0  # b beats at the same time as a
    clock.now += timedelta(seconds=LEASE + 1)  # the database was away for everyone
    assert await node_b.round() == 0  # b cannot tell a dead a from a cut-off one yet
    still = await repo.get_call(call.id)
    assert still is not None and still.status == "answered"
    clock.now += timedelta(seconds=LEASE / 3)  # a had its chance to beat, and did not
    assert await node_b.round() == 1
