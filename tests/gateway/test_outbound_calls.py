"""place-call through the control API to sipp acting as a trunk that demands digest auth."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.gateway.conftest import Api, EchoAgent, Trunkline, free_port, sipp_media_port
from tests.gateway.sip_peer import bind_udp
from tests.gateway.test_sipp_carrier import PCAPS, sipp_available
from trunkline.gateway.sip.message import SipRequest, parse_message, response_to
from trunkline.storage.models import Call

SCENARIO = Path(__file__).parent / "scenarios" / "uas_digest.xml"
BYO_NUMBER = "+15550100777"
CALLEE = "+14155550142"


class SippTrunk:
    """sipp as the far end: ``-sf uas_digest.xml`` on a loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> SippTrunk:
        (self.workdir / "pcap").symlink_to(PCAPS)
        self.process = await asyncio.create_subprocess_exec(
            "sipp",
            "-sf", str(SCENARIO),
            "-i", "127.0.0.1",
            "-p", str(self.port),
            "-mp", str(sipp_media_port()),
            "-m", "1",
            "-timeout", "30s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            cwd=self.workdir,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return self

    async def finished(self) -> int:
        assert self.process is not None
        _, stderr = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode is not None
        if self.process.returncode != 0:
            errors = "".join(p.read_text() for p in self.workdir.glob("*_errors.log"))
            raise AssertionError(f"sipp exited {self.process.returncode}: {errors or stderr!r}")
        return self.process.returncode

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def register_byo_number(api: Api, trunk_port: int, password: str, echo_url: str) -> None:
    status, body = await api.post(
        "/numbers/register",
        {
            "phone_number": BYO_NUMBER,
            "provider": "twilio",
            "agent_id": "sales",
            "provider_config": {
                "trunk_address": f"127.0.0.1:{trunk_port}",
                "auth_username": "trunk-user",
                "auth_password": password,
            },
            "client_websocket_url": echo_url,
        },
    )
    assert status == 201, body


async def wait_status(trunkline: Trunkline, call_id: str, wanted: set[str]) -> Call:
    for _ in range(400):
        call = await trunkline.services.repository.get_call(call_id)
        assert call is not None
        if call.status in wanted:
            return call
        await asyncio.sleep(0.025)
    raise AssertionError(f"call stayed {call.status}, wanted one of {wanted}")


async def place(api: Api) -> dict[str, Any]:
    status, body = await api.post("/place-call", {"from_number": BYO_NUMBER, "to_number": CALLEE})
    assert status == 201, body
    assert body["direction"] == "outbound"
    return body  # type: ignore[no-any-return]


@pytest.mark.sipp
@pytest.mark.parametrize("who_hangs_up", ["trunkline", "trunk"])
async def test_place_call_authenticates_answers_bridges_and_completes(
    trunkline: Trunkline, echo_agent: EchoAgent, api: Api, tmp_path: Path, who_hangs_up: str
) -> None:
    require(sipp_available(), "sipp and its pcaps (Debian package sip-tester)")
    async with SippTrunk(tmp_path) as trunk:
        await register_byo_number(api, trunk.port, "trunk-secret", echo_agent.url)
        placed = await place(api)
        answered = await wait_status(trunkline, placed["id"], {"answered", "failed"})
        assert (answered.status, answered.failure_detail) == ("answered", None)
        assert answered.started_at is not None
        assert answered.sip_call_id and answered.sip_call_id.endswith("@trunkline")
        agent = echo_agent.calls[0]
        assert '"direction": "outbound"' in agent.headers["x-call-context"]
        if who_hangs_up == "trunkline":
            await asyncio.sleep(0.5)  # let some of the trunk's audio through
            status, body = await api.post(f"/calls/{placed['id']}/hangup", {})
            assert status == 200, body
        ended = await wait_status(trunkline, placed["id"], {"completed", "failed"})
        await trunk.finished()
    assert ended.status == "completed"
    assert ended.hangup_reason == ("local" if who_hangs_up == "trunkline" else "remote")
    await asyncio.wait_for(agent.closed.wait(), 5)
    assert agent.media_bytes > 0  # the trunk's A-law audio reached the agent
    assert [e["event"] for e in agent.events][:1] == ["start"]
    assert not trunkline.gateway.calls
    assert trunkline.gateway.ports.in_use == 0


@pytest.mark.sipp
async def test_wrong_trunk_password_fails_the_call(
    trunkline: Trunkline, echo_agent: EchoAgent, api: Api, tmp_path: Path
) -> None:
    require(sipp_available(), "sipp and its pcaps (Debian package sip-tester)")
    async with SippTrunk(tmp_path) as trunk:
        await register_byo_number(api, trunk.port, "not-the-secret", echo_agent.url)
        placed = await place(api)
        ended = await wait_status(trunkline, placed["id"], {"failed", "answered"})
        await trunk.finished()
    assert ended.status == "failed"
    assert ended.failure_detail == "403 Forbidden"
    assert not echo_agent.calls
    assert trunkline.gateway.ports.in_use == 0


async def test_place_call_without_any_trunk_is_a_clear_error(
    trunkline: Trunkline, api: Api
) -> None:
    status, number = await api.post(
        "/numbers",
        {
            "agent_handle": "sales",
            "incoming_call_action": "auto_accept",
            "client_websocket_url": "ws://127.0.0.1:9/agent",
        },
    )
    assert status == 201, number
    status, body = await api.post(
        "/place-call", {"from_number": number["number"], "to_number": CALLEE}
    )
    assert (status, body) == (
        502,
        {"detail": "Carrier dial failed: no SIP trunk is configured for this number"},
    )


class RingingTrunk:
    """A trunk that rings forever: 180 to every INVITE, 200 + 487 to a CANCEL."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def __aenter__(self) -> RingingTrunk:
        self.transport, self.inbox, self.port = await bind_udp(sip=True)
        self.task = asyncio.create_task(self._serve())
        return self

    async def _serve(self) -> None:
        invite: SipRequest | None = None
        while True:
            message = parse_message(await self.inbox.queue.get())
            source = self.inbox.last_source
            if not isinstance(message, SipRequest):
                continue
            self.methods.append(message.method)
            if message.method == "INVITE":
                invite = message
                self.transport.sendto(response_to(message, 180, to_tag="ring").serialize(), source)
            elif message.method == "CANCEL" and invite is not None:
                self.transport.sendto(response_to(message, 200, to_tag="ring").serialize(), source)
                terminated = response_to(invite, 487, to_tag="ring").serialize()
                self.transport.sendto(terminated, source)

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.transport.close()


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param("ring timeout", marks=pytest.mark.settings(sip_ring_timeout_seconds=1.0)),
        pytest.param("api hangup", marks=pytest.mark.settings(sip_ring_timeout_seconds=30)),
    ],
)
async def test_unanswered_call_is_cancelled(
    trunkline: Trunkline, echo_agent: EchoAgent, api: Api, ending: str
) -> None:
    async with RingingTrunk() as trunk:
        await register_byo_number(api, trunk.port, "unused", echo_agent.url)
        placed = await place(api)
        await wait_status(trunkline, placed["id"], {"ringing"})
        if ending == "api hangup":
            status, body = await api.post(f"/calls/{placed['id']}/hangup", {})
            assert status == 200, body
        ended = await wait_status(trunkline, placed["id"], {"failed", "canceled"})
    assert trunk.methods[0] == "INVITE" and "CANCEL" in trunk.methods
    assert "ACK" in trunk.methods  # for the 487
    if ending == "ring timeout":
        assert (ended.status, ended.failure_detail) == ("failed", "no answer")
    else:
        assert (ended.status, ended.hangup_reason) == ("canceled", "local")
    assert not echo_agent.calls
    assert trunkline.gateway.ports.in_use == 0
