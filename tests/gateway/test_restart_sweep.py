"""Calls a killed process left live are ended by the next start of the same owner.

The database and data directory are seeded as a process killed mid-call leaves
them: live call rows owned by ``<node id>:<slot>``, the node id file, and a
recording whose header sizes were never written. The restarted daemon must end
its own calls (``gateway_restart``), queue ``call.ended``, repair and publish
the recording, and leave calls of other nodes and slots alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile
from prometheus_client import REGISTRY

from tests.backends import BACKENDS, postgres_schema, postgres_test_url
from tests.gateway.conftest import NUMBER, free_port
from tests.gateway.test_recording_crash import seed_number_into
from tests.test_daemon import wait_http
from trunkline.config import settings_from
from trunkline.daemon import ShutdownSignal, serve
from trunkline.runtime import Runtime
from trunkline.storage.models import Call, CallStatus, utcnow
from trunkline.storage.postgres import PostgresRepository
from trunkline.storage.repository import Repository
from trunkline.storage.sqlite import SqliteRepository

NODE = "0a1b2c3d4e5f6789"
OTHER_NODE = "fedcba9876543210"
RECORDED_SECONDS = 1.5
AGENT_URL = "ws://127.0.0.1:9/agent"  # never dialled: no call is placed


@dataclass
class Seeded:
    repository: Repository
    organization_id: str
    database_url: str


@asynccontextmanager
async def seeded_database(backend: str, data_dir: Path) -> AsyncIterator[Seeded]:
    """A migrated database with one number, as the killed process left it."""
    os.makedirs(data_dir, exist_ok=True)
    if backend == "sqlite":
        repository: Repository = await SqliteRepository.open(data_dir / "trunkline.db")
        try:
            await repository.migrate()
            organization_id = await seed_number_into(repository, AGENT_URL)
            yield Seeded(repository, organization_id, "")
        finally:
            await repository.close()
        return
    async with postgres_schema() as schema:
        url = await postgres_test_url()
        repository = await PostgresRepository.open(url, search_path=schema, max_size=2)
        try:
            await repository.migrate()
            organization_id = await seed_number_into(repository, AGENT_URL)
            yield Seeded(repository, organization_id, f"{url}?search_path={schema}")
        finally:
            await repository.close()


async def live_call(repository: Repository, owner: str, status: CallStatus) -> Call:
    """A call row in ``status`` owned by ``owner``; answered calls started 30 s ago."""
    number = await repository.find_active_number(NUMBER)
    assert number is not None
    call = await repository.create_call(
        Call.initiated(number, remote_phone_number="+15550109999", direction="inbound", owner=owner)
    )
    changes: dict[str, object] = {"status": status}
    if status == "answered":
        changes["started_at"] = utcnow() - timedelta(seconds=30)
    if status == "completed":
        changes.update(started_at=utcnow(), ended_at=utcnow(), hangup_reason="remote")
    updated = await repository.update_call(call.id, changes)
    assert updated is not None
    return updated


def write_node_id(data_dir: Path, node: str) -> None:
    descriptor = os.open(data_dir / "node-id", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(node)


def crash_left_recording(data_dir: Path, call_id: str) -> Path:
    """A ``.wav.partial`` whose RIFF and data sizes are still zero, ending mid-frame."""
    recordings = data_dir / "recordings"
    recordings.mkdir(mode=0o700, exist_ok=True)
    partial = recordings / f"{call_id}.wav.partial"
    t = np.arange(int(8000 * RECORDED_SECONDS)) / 8000
    tone = (6000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    soundfile.write(partial, np.column_stack((tone, tone // 2)), 8000, "PCM_16", format="WAV")
    raw = bytearray(partial.read_bytes())
    data_at = raw.index(b"data")
    raw[4:8] = struct.pack("<I", 0)
    raw[data_at + 4 : data_at + 8] = struct.pack("<I", 0)
    partial.write_bytes(bytes(raw) + b"\x01\x02")  # half a stereo frame: cut by the kill
    return partial


def restart_ends(status: str) -> float:
    """``trunkline_calls_total`` of calls ended by a restart sweep in this process."""
    labels = {"status": status, "hangup_reason": "gateway_restart"}
    return REGISTRY.get_sample_value("trunkline_calls_total", labels) or 0.0


async def run_daemon_once(data_dir: Path, database_url: str) -> None:
    """Start the daemon in this loop, wait until it serves, and stop it."""
    rtp_low = 22000 + (free_port() % 100) * 20  # below the ephemeral range
    settings = settings_from({
        "data_dir": data_dir, "host": "127.0.0.1", "http_port": 0, "sip_host": "127.0.0.1",
        "sip_port": free_port(), "rtp_port_min": rtp_low, "rtp_port_max": rtp_low + 19,
        "media_address": "127.0.0.1", "database_url": database_url, "transcription": "off",
        "allow_insecure_urls": True, "allow_private_targets": True,
    })  # fmt: skip
    ready: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
    shutdown = ShutdownSignal()
    task = asyncio.create_task(
        serve(settings, on_ready=lambda s, _: ready.set_result(s), shutdown=shutdown)
    )
    try:
        await asyncio.wait_for(asyncio.shield(ready), 20)
    finally:
        shutdown.requested.set()
        await asyncio.wait_for(task, 20)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_restart_ends_the_calls_it_left_live_and_publishes_their_recording(
    backend: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    async with seeded_database(backend, data_dir) as seeded:
        repository = seeded.repository
        write_node_id(data_dir, NODE)
        answered = await live_call(repository, f"{NODE}:0", "answered")
        ringing = await live_call(repository, f"{NODE}:0", "ringing")
        initiated = await live_call(repository, f"{NODE}:0", "initiated")
        finished = await live_call(repository, f"{NODE}:0", "completed")
        elsewhere = await live_call(repository, f"{OTHER_NODE}:0", "answered")
        partial = crash_left_recording(data_dir, answered.id)
        before = {status: restart_ends(status) for status in ("completed", "failed")}

        await run_daemon_once(data_dir, seeded.database_url)

        assert restart_ends("completed") - before["completed"] == 1
        assert restart_ends("failed") - before["failed"] == 2

        ended = await repository.get_call(answered.id)
        assert ended is not None and ended.started_at is not None
        assert (ended.status, ended.hangup_reason) == ("completed", "gateway_restart")
        assert ended.ended_at == ended.started_at + timedelta(seconds=RECORDED_SECONDS)
        assert ended.recording_key == f"recordings/{answered.id}.wav"
        for never_answered in (ringing, initiated):
            failed = await repository.get_call(never_answered.id)
            assert failed is not None
            assert (failed.status, failed.hangup_reason) == ("failed", "gateway_restart")
            assert failed.ended_at is not None and failed.failure_detail
        assert await repository.get_call(finished.id) == finished
        assert await repository.get_call(elsewhere.id) == elsewhere

        events = await repository.list_events(seeded.organization_id)
        ended_events = {e.data["id"]: e.data for e in events if e.event_type == "call.ended"}
        assert set(ended_events) == {answered.id, ringing.id, initiated.id}
        assert ended_events[answered.id]["status"] == "completed"
        assert ended_events[answered.id]["hangup_reason"] == "gateway_restart"
        assert ended_events[answered.id]["duration_seconds"] == RECORDED_SECONDS
        assert ended_events[ringing.id]["status"] == "failed"
        (ready,) = [e for e in events if e.event_type == "recording.ready"]
        assert ready.data["call_id"] == answered.id

        assert not partial.exists()
        stored = data_dir / "blobs" / "recordings" / f"{answered.id}.wav"
        audio, rate = soundfile.read(stored, dtype="int16")
        assert rate == 8000 and audio.shape == (int(8000 * RECORDED_SECONDS), 2)
        assert abs(audio[:, 0]).max() > 5000 and abs(audio[:, 1]).max() > 2500


def start_supervisor(data_dir: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
    rtp_low = 26400 + (free_port() % 50) * 40  # below the ephemeral range
    env = dict(
        os.environ,
        TRUNKLINE_DATA_DIR=str(data_dir), TRUNKLINE_HOST="127.0.0.1",
        TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(sip_port), TRUNKLINE_MEDIA_ADDRESS="127.0.0.1",
        TRUNKLINE_RTP_PORT_MIN=str(rtp_low), TRUNKLINE_RTP_PORT_MAX=str(rtp_low + 39),
        TRUNKLINE_TRANSCRIPTION="off",
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "trunkline", "serve", "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    return process, http_port


async def test_each_worker_ends_only_the_calls_of_its_own_slot(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with seeded_database("sqlite", data_dir) as seeded:
        repository = seeded.repository
        write_node_id(data_dir, NODE)
        slot_0 = await live_call(repository, f"{NODE}:0", "answered")
        slot_1 = await live_call(repository, f"{NODE}:1", "answered")
        slot_2 = await live_call(repository, f"{NODE}:2", "answered")  # no such worker now
        elsewhere = await live_call(repository, f"{OTHER_NODE}:1", "answered")
        partial = crash_left_recording(data_dir, slot_1.id)
        supervisor, http_port = start_supervisor(data_dir, 2)
        try:
            await asyncio.to_thread(wait_http, f"http://127.0.0.1:{http_port}/healthz")
            for _ in range(200):  # each worker sweeps before it binds; wait for both
                calls = [await repository.get_call(c.id) for c in (slot_0, slot_1)]
                if all(c is not None and c.status == "completed" for c in calls) and (
                    calls[1] is not None and calls[1].recording_key
                ):
                    break
                await asyncio.sleep(0.05)
        finally:
            supervisor.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.to_thread(supervisor.communicate, None, 20)
        assert supervisor.returncode == 0
        log = stderr.decode()
        for slot in (0, 1):
            call = await repository.get_call((slot_0, slot_1)[slot].id)
            assert call is not None
            assert (call.status, call.hangup_reason) == ("completed", "gateway_restart")
            # the worker of that slot ended it: one line from each owner
            assert log.count(f"ended 1 calls left live by the last run of {NODE}:{slot}") == 1
        recorded = await repository.get_call(slot_1.id)
        assert recorded is not None and recorded.recording_key == f"recordings/{slot_1.id}.wav"
        assert not partial.exists()
        stored = data_dir / "blobs" / "recordings" / f"{slot_1.id}.wav"
        assert soundfile.info(str(stored)).frames == int(8000 * RECORDED_SECONDS)
        assert await repository.get_call(slot_2.id) == slot_2
        assert await repository.get_call(elsewhere.id) == elsewhere
        assert f"{NODE}:2" not in log
