"""A real pipecat 1.x Twilio bot (examples/pipecat_twilio_bot) as the agent of a SIP call.

The bot runs as its own process, exactly as its README starts it; trunkline
dials it on the Twilio persona. The caller's audio must come back, and the
bot's hang-up must end the call the way it ends a Twilio call: its
``EndFrame`` closes the socket with 1000 (no redial), and with
``auto_hang_up`` its serializer first sends Twilio's REST hang-up, which
trunkline serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.gateway.conftest import NUMBER, PASS_THROUGH, Trunkline, free_port
from tests.gateway.sip_peer import CarrierCall
from tests.gateway.test_inbound_calls import wait_for_status
from tests.gateway.test_metrics import scrape, value
from trunkline.agent.twilio_protocol import call_sid_for
from trunkline.crypto import hash_token, new_token

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "examples" / "pipecat_twilio_bot" / "bot.py"
CONNECTS = "trunkline_agent_connect_seconds_count"
# Non-silent μ-law, frame by frame different: the echo must be these very bytes, in order.
CALLER_FRAMES = [bytes([0x10 + index % 0x60]) * 160 for index in range(100)]

# The bot's echo is compared with the caller's bytes: no concealment frames in between.
pytestmark = [pytest.mark.timeout(90), PASS_THROUGH]


@contextlib.asynccontextmanager
async def pipecat_bot(
    log_path: Path, *, args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """The example bot as its own process (its own process group); yields its ws:// URL."""
    require(importlib.util.find_spec("pipecat") is not None, "pipecat-ai is not installed")
    port = free_port(socket.SOCK_STREAM)
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(BOT), "--port", str(port), *args,
            env={**os.environ, **(env or {})}, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        for _ in range(300):  # pipecat imports take a few seconds on a loaded machine
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            assert process.returncode is None, await bot_log(log_path)
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the pipecat bot did not start listening: " + await bot_log(log_path))
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def bot_says(log_path: Path, text: str) -> None:
    """Wait (bounded) until the bot's log holds ``text``."""
    for _ in range(100):
        log = await asyncio.to_thread(log_path.read_text)
        if text in log:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"the bot never logged {text!r}:\n{log}")


async def bot_log(log_path: Path) -> str:
    return await asyncio.to_thread(log_path.read_text)


async def call_until_the_bot_hangs_up(trunkline: Trunkline) -> bytes:
    """Place a SIP call, talk, and wait for trunkline's BYE; the echo heard."""
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        talking = asyncio.create_task(carrier.send_audio(CALLER_FRAMES))
        echo = await carrier.received_audio(25 * 160, wait_seconds=20)
        bye = await carrier.expect_request("BYE", wait_seconds=20)
        talking.cancel()
        assert bye.call_id == carrier.call_id
    finally:
        carrier.close()
    return echo


async def only_call_id(trunkline: Trunkline, organization_id: str) -> str:
    (call,) = await trunkline.services.repository.list_calls(organization_id)
    await wait_for_status(trunkline, call.id, "completed")
    return call.id


async def test_a_pipecat_bot_ending_with_an_end_frame_hangs_up_without_a_redial(
    trunkline: Trunkline, tmp_path: Path
) -> None:
    log_path = tmp_path / "bot.log"
    async with pipecat_bot(log_path, args=("--hang-up-after", "1")) as url:
        number = await trunkline.number("auto_accept", url, agent_protocol="twilio")
        before = await scrape(trunkline)
        echo = await call_until_the_bot_hangs_up(trunkline)
        call_id = await only_call_id(trunkline, number.organization_id)
        after = await scrape(trunkline)
    assert echo == b"".join(CALLER_FRAMES[:25]), "the bot's echo is not the caller's audio"
    stored = await trunkline.services.repository.get_call(call_id)
    assert stored is not None and (stored.status, stored.hangup_reason) == ("completed", "local")
    assert value(after, CONNECTS) - value(before, CONNECTS) == 1  # dialled once, never redialled
    await bot_says(log_path, "hanging up")


@pytest.mark.settings(agent_reconnect_grace_seconds=60)
async def test_a_pipecat_bot_with_auto_hang_up_ends_the_call_through_the_rest_api(
    trunkline: Trunkline, tmp_path: Path
) -> None:
    log_path = tmp_path / "bot.log"
    token = new_token()  # the bot's TWILIO_AUTH_TOKEN: a trunkline service token
    args = ("--hang-up-after", "1", "--api-base-url", f"http://127.0.0.1:{trunkline.http_port}")
    async with pipecat_bot(log_path, args=args, env={"TWILIO_AUTH_TOKEN": token}) as url:
        number = await trunkline.number("auto_accept", url, agent_protocol="twilio")
        await trunkline.services.repository.create_token(
            number.organization_id, None, hash_token(token)
        )
        before = await scrape(trunkline)
        echo = await call_until_the_bot_hangs_up(trunkline)
        call_id = await only_call_id(trunkline, number.organization_id)
        # pipecat logs this only on a 200 from trunkline's REST hang-up, which answers once
        # the call is ended (a call already over would be a 404, "already terminated").
        await bot_says(log_path, f"Successfully terminated Twilio call {call_sid_for(call_id)}")
        after = await scrape(trunkline)
    assert echo == b"".join(CALLER_FRAMES[:25])
    stored = await trunkline.services.repository.get_call(call_id)
    assert stored is not None and (stored.status, stored.hangup_reason) == ("completed", "local")
    assert value(after, CONNECTS) - value(before, CONNECTS) == 1
