"""``trunkline call`` against another SIP stack: sipp's built-in UAS answers and echoes RTP."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

from tests.conftest import require
from tests.gateway.conftest import sipp_media_port
from trunkline.testcall.caller import CallOptions, place_call


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def error_log(workdir: Path) -> str:
    return "".join(p.read_text() for p in workdir.glob("*_errors.log"))


async def test_a_sipp_uas_answers_echoes_and_is_hung_up_on(tmp_path: Path) -> None:
    require(shutil.which("sipp") is not None, "sipp (Debian sip-tester)")
    sip_port = free_udp_port()
    sipp = await asyncio.create_subprocess_exec(
        "sipp", "-sn", "uas",
        "-i", "127.0.0.1",
        "-p", str(sip_port),
        "-mp", str(sipp_media_port()),
        "-rtp_echo",
        "-m", "1",
        "-timeout", "30s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        # Until sipp has bound its port the INVITE is simply retransmitted.
        summary = await place_call(
            CallOptions("1234", "127.0.0.1", sip_port, dtmf="1", seconds=2, answer_timeout=15)
        )
        _, stderr = await asyncio.wait_for(sipp.communicate(), 20)
    finally:
        if sipp.returncode is None:
            sipp.kill()
            await sipp.wait()
    if sipp.returncode != 0:
        errors = await asyncio.to_thread(error_log, tmp_path)
        raise AssertionError(
            f"sipp exited {sipp.returncode}: {errors or stderr.decode()}"
        )  # its one call ended with our BYE
    assert summary.answered and summary.status == 200
    assert summary.hung_up_by == "caller"
    counts = summary.counts
    assert counts.audio_sent + counts.dtmf_packets_sent == 100  # 2 s of 20 ms ticks
    assert counts.dtmf_packets_sent == 8
    assert counts.audio_received > 50 and counts.dtmf_packets_received == 8  # echoed
    assert summary.round_trip_ms is not None and summary.round_trip_ms < 1000
