"""``serve --workers 2``: calls land on both processes and an API hang-up reaches the owner."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.gateway.conftest import NUMBER, EchoAgent, free_port
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_recording_crash import seed_number
from tests.test_daemon import wait_http
from trunkline.crypto import hash_token, new_token
from trunkline.storage.sqlite import SqliteRepository


def start_workers(env: dict[str, str], count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "trunkline", "serve", "--workers", str(count)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def test_two_workers_share_calls_and_route_hangups_to_the_owner(
    tmp_path: Path, echo_agent: EchoAgent
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    organization_id = await seed_number(data_dir, echo_agent.url)
    repository = await SqliteRepository.open(data_dir / "trunkline.db")
    token = new_token()
    await repository.create_token(organization_id, None, hash_token(token))
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
    rtp_low = 28400 + (free_port() % 50) * 40  # below the ephemeral range
    env = dict(
        os.environ,
        TRUNKLINE_DATA_DIR=str(data_dir), TRUNKLINE_HOST="127.0.0.1",
        TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(sip_port), TRUNKLINE_MEDIA_ADDRESS="127.0.0.1",
        TRUNKLINE_RTP_PORT_MIN=str(rtp_low), TRUNKLINE_RTP_PORT_MAX=str(rtp_low + 199),
        TRUNKLINE_ALLOW_INSECURE_URLS="1", TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
    )  # fmt: skip
    supervisor = start_workers(env, 2)
    carriers: list[CarrierCall] = []
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{http_port}/healthz")
        await asyncio.sleep(0.5)  # both workers listening
        by_owner: dict[str, tuple[str, CarrierCall]] = {}
        for _ in range(16):  # each new source address is hashed to one worker
            carrier = await CarrierCall.open(sip_port)
            carriers.append(carrier)
            assert (await carrier.invite(NUMBER)).status == 200
            calls = await repository.list_calls(organization_id)
            newest = max(calls, key=lambda c: c.created_at)
            assert newest.owner is not None
            by_owner.setdefault(newest.owner, (newest.id, carrier))
            if len(by_owner) == 2:
                break
        assert len(by_owner) == 2, "every call landed on one worker"
        api = f"http://127.0.0.1:{http_port}/api/v1/phone"
        async with aiohttp.ClientSession(headers={"X-API-Key": token}) as http:
            for call_id, carrier in by_owner.values():
                async with http.post(f"{api}/calls/{call_id}/hangup", json={}) as response:
                    assert response.status == 200, await response.text()
                bye = await carrier.expect_request("BYE", wait_seconds=5)  # from the owner
                assert bye.call_id == carrier.call_id
        for carrier in carriers:
            if carrier.call_id not in {c.call_id for _, c in by_owner.values()}:
                await carrier.bye(NUMBER)
        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(supervisor.wait, 20) == 0
    finally:
        for carrier in carriers:
            carrier.close()
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        await repository.close()
