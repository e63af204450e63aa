"""sipp as the carrier: many concurrent A-law calls with RFC 4733 DTMF into an echo agent."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from tests.conftest import require
from tests.gateway.conftest import (
    NUMBER,
    EchoAgent,
    Trunkline,
    sipp_media_port,
    sipp_signalling_port,
)

SCENARIO = Path(__file__).parent / "scenarios" / "uac_g711a_dtmf.xml"
PCAPS = Path("/usr/share/sip-tester")


async def run_sipp(
    trunkline: Trunkline,
    workdir: Path,
    calls: int,
    concurrent: int,
    scenario: tuple[str, str] = ("-sf", str(SCENARIO)),
) -> int:
    (workdir / "pcap").symlink_to(PCAPS)
    process = await asyncio.create_subprocess_exec(
        "sipp",
        f"127.0.0.1:{trunkline.sip_port}",
        *scenario,
        "-s", NUMBER,
        "-i", "127.0.0.1",
        "-p", str(sipp_signalling_port()),
        "-mp", str(sipp_media_port()),
        "-m", str(calls),
        "-l", str(concurrent),
        "-r", str(concurrent),
        "-timeout", "60s",
        "-timeout_error",
        "-max_recv_loops", "1000",
        "-nostdin",
        "-trace_err",
        cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    if process.returncode != 0:
        detail = await asyncio.to_thread(_error_log, workdir) or stderr.decode()
        raise AssertionError(f"sipp exited {process.returncode}: {detail[-2000:]}")
    return process.returncode


def _error_log(workdir: Path) -> str:
    return "".join(p.read_text() for p in workdir.glob("*_errors.log"))


def sipp_available() -> bool:
    return shutil.which("sipp") is not None and PCAPS.is_dir()


async def test_fifty_sipp_calls_ten_at_a_time(
    trunkline: Trunkline, echo_agent: EchoAgent, tmp_path: Path
) -> None:
    require(await asyncio.to_thread(sipp_available), "sipp (Debian sip-tester)")
    number = await trunkline.number("auto_accept", echo_agent.url)
    await run_sipp(trunkline, tmp_path, calls=50, concurrent=10)
    await assert_fifty_echoed_calls(trunkline, echo_agent, number.organization_id)


async def test_fifty_calls_of_sipps_own_uac_pcap_scenario(
    trunkline: Trunkline, echo_agent: EchoAgent, tmp_path: Path
) -> None:
    """sipp's built-in ``-sn uac_pcap`` as shipped: 8 s of A-law from its pcap, then digit 1."""
    require(await asyncio.to_thread(sipp_available), "sipp (Debian sip-tester)")
    number = await trunkline.number("auto_accept", echo_agent.url)
    await run_sipp(trunkline, tmp_path, calls=50, concurrent=25, scenario=("-sn", "uac_pcap"))
    await assert_fifty_echoed_calls(trunkline, echo_agent, number.organization_id)


async def assert_fifty_echoed_calls(
    trunkline: Trunkline, echo_agent: EchoAgent, organization_id: str
) -> None:
    repository = trunkline.services.repository
    for _ in range(100):
        calls = await repository.list_calls(organization_id, limit=100)
        if len(calls) == 50 and all(c.status == "completed" for c in calls):
            break
        await asyncio.sleep(0.1)
    assert len(calls) == 50
    assert {c.status for c in calls} == {"completed"}
    assert {c.hangup_reason for c in calls} == {"remote"}
    assert len(echo_agent.calls) == 50
    for agent_call in echo_agent.calls:
        await asyncio.wait_for(agent_call.closed.wait(), 10)
        assert agent_call.media_bytes > 160 * 25  # at least half a second of caller audio
        assert agent_call.digits == ["1"]
    gateway = trunkline.gateway
    assert gateway.ports.in_use == 0 and not gateway.calls  # every RTP port went back
