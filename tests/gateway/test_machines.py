"""Two trunkline processes sharing only PostgreSQL (as on two machines): an API hang-up
sent to one reaches the call the other carries, over LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.backends import postgres_schema, postgres_test_url
from tests.gateway.conftest import NUMBER, EchoAgent, free_port
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_recording_crash import seed_number_into
from tests.test_daemon import wait_http
from trunkline.crypto import hash_token, new_token
from trunkline.storage.postgres import PostgresRepository


def start_machine(index: int, tmp_path: Path, dsn: str) -> tuple[subprocess.Popen[bytes], int, int]:
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
    rtp_low = 24000 + index * 2000 + (free_port() % 50) * 20  # below the ephemeral range
    env = dict(
        os.environ,
        TRUNKLINE_DATA_DIR=str(tmp_path / f"machine-{index}"), TRUNKLINE_HOST="127.0.0.1",
        TRUNKLINE_HTTP_PORT=str(http_port), TRUNKLINE_SIP_HOST="127.0.0.1",
        TRUNKLINE_SIP_PORT=str(sip_port), TRUNKLINE_MEDIA_ADDRESS="127.0.0.1",
        TRUNKLINE_RTP_PORT_MIN=str(rtp_low), TRUNKLINE_RTP_PORT_MAX=str(rtp_low + 99),
        TRUNKLINE_ALLOW_INSECURE_URLS="1", TRUNKLINE_ALLOW_PRIVATE_TARGETS="1",
        TRUNKLINE_DATABASE_URL=dsn, TRUNKLINE_SECRET_KEY="shared-by-every-machine-0123456789",
        TRUNKLINE_TRANSCRIPTION="off",
    )  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "trunkline", "serve"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, http_port, sip_port


async def test_an_api_hangup_on_one_machine_ends_a_call_carried_by_another(
    tmp_path: Path, echo_agent: EchoAgent
) -> None:
    async with postgres_schema() as schema:
        url = await postgres_test_url()
        dsn = f"{url}?search_path={schema}"
        repository = await PostgresRepository.open(url, search_path=schema, max_size=2)
        machines: list[subprocess.Popen[bytes]] = []
        carrier: CarrierCall | None = None
        try:
            await repository.migrate()
            organization_id = await seed_number_into(repository, echo_agent.url)
            token = new_token()
            await repository.create_token(organization_id, None, hash_token(token))
            carrying, _, sip_port = start_machine(0, tmp_path, dsn)
            other, other_http, _ = start_machine(1, tmp_path, dsn)
            machines += [carrying, other]
            for port in (other_http,):
                await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz")
            await asyncio.sleep(1.0)  # the first machine's SIP socket is bound too
            carrier = await CarrierCall.open(sip_port)
            assert (await carrier.invite(NUMBER)).status == 200
            (call,) = await repository.list_calls(organization_id)
            node = (tmp_path / "machine-0" / "node-id").read_text()
            assert call.owner == f"{node}:0"  # the first machine's node id, slot 0
            api = f"http://127.0.0.1:{other_http}/api/v1/phone"
            async with (
                aiohttp.ClientSession(headers={"X-API-Key": token}) as http,
                http.post(f"{api}/calls/{call.id}/hangup", json={}) as response,
            ):
                assert response.status == 200, await response.text()
                assert (await response.json())["status"] == "completed"
            bye = await carrier.expect_request("BYE", wait_seconds=5)  # from the carrying one
            assert bye.call_id == carrier.call_id
            (agent,) = echo_agent.calls
            await asyncio.wait_for(agent.closed.wait(), 5)
            assert agent.events[-1] == {"event": "stop", "reason": "local"}
            for machine in machines:
                machine.send_signal(signal.SIGTERM)
            for machine in machines:
                assert await asyncio.to_thread(machine.wait, 20) == 0
        finally:
            if carrier is not None:
                carrier.close()
            for machine in machines:
                if machine.poll() is None:
                    machine.kill()
                    machine.wait()
            await repository.close()
