"""A recording survives ``kill -9`` of the process mid-call: the restart repairs and publishes it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import soundfile

from tests.gateway.conftest import NUMBER, EchoAgent, free_port
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_recording import tone_frames
from tests.test_daemon import wait_http
from trunkline.storage.models import PhoneNumber, new_id, utcnow
from trunkline.storage.repository import Repository
from trunkline.storage.sqlite import SqliteRepository


async def seed_number(data_dir: Path, agent_url: str) -> str:
    """A SQLite database with one auto-accept number; returns its organisation id."""
    repository = await SqliteRepository.open(data_dir / "trunkline.db")
    try:
        await repository.migrate()
        return await seed_number_into(repository, agent_url)
    finally:
        await repository.close()


async def seed_number_into(repository: Repository, agent_url: str) -> str:
    """One auto-accept number in a migrated repository; returns its organisation id."""
    organization = await repository.create_organization("acme")
    identity = await repository.create_identity(organization.id, "sales", None)
    now = utcnow()
    await repository.create_number(
        PhoneNumber(
            id=new_id(), organization_id=organization.id, number=NUMBER, type="local",
            status="active", incoming_call_action="auto_accept",
            client_websocket_url=agent_url, incoming_call_webhook_url=None,
            agent_identity_id=identity.id, state="NY", country="US",
            created_at=now, updated_at=now,
        ),
        max_active=10,
    )  # fmt: skip
    return organization.id


def start_serve(data_dir: Path, http_port: int, sip_port: int) -> subprocess.Popen[bytes]:
    rtp_low = 30600 + (free_port() % 100) * 20  # below the ephemeral range
    env = dict(
        os.environ,
        TRUNKLINE_DATA_DIR=str(data_dir), TRUNKLINE_HOST="127.0.0.1",
        TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(sip_port), TRUNKLINE_MEDIA_ADDRESS="127.0.0.1",
        TRUNKLINE_RTP_PORT_MIN=str(rtp_low), TRUNKLINE_RTP_PORT_MAX=str(rtp_low + 99),
        TRUNKLINE_ALLOW_INSECURE_URLS="1", TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "trunkline", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_recording_survives_kill_9(tmp_path: Path, echo_agent: EchoAgent) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    await seed_number(data_dir, echo_agent.url)
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
    server = start_serve(data_dir, http_port, sip_port)
    carrier = await CarrierCall.open(sip_port)
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{http_port}/healthz")
        assert (await carrier.invite(NUMBER)).status == 200
        await carrier.send_audio(tone_frames(2.5))  # 2.5 s of audio, flushed every second
        server.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.wait, 10)
    finally:
        carrier.close()
        if server.poll() is None:
            server.kill()
            server.wait()
    (partial,) = (data_dir / "recordings").glob("*.wav.partial")
    restarted = start_serve(data_dir, http_port, sip_port)
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{http_port}/healthz")
    finally:
        restarted.send_signal(signal.SIGTERM)
        await asyncio.to_thread(restarted.wait, 10)
    assert not partial.exists()
    name = partial.name.removesuffix(".partial")
    repaired = data_dir / "blobs" / "recordings" / name  # published as the call's recording
    audio, rate = soundfile.read(repaired, dtype="int16")
    assert rate == 8000 and audio.shape[1] == 2
    assert audio.shape[0] >= 8000 * 1.5  # all but the last, unflushed second at most
    assert abs(audio[:8000, 0]).max() > 2000  # the caller's tone is there
