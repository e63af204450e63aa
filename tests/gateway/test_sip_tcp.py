"""SIP over TCP (RFC 3261 §18): sipp calls trunkline on one TCP connection; framing limits."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.gateway.conftest import (
    NUMBER,
    EchoAgent,
    Trunkline,
    sipp_media_port,
    sipp_signalling_port,
)
from tests.gateway.test_sipp_carrier import PCAPS, SCENARIO, _error_log, sipp_available
from trunkline import metrics


def free_udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP: SIP over TCP listens on the UDP port's number."""
    for _ in range(50):
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        ):
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free for both UDP and TCP")


@pytest.fixture
def trunkline_overrides() -> dict[str, Any]:
    return {"transcription": "off", "sip_port": free_udp_and_tcp_port()}


async def run_sipp_tcp(trunkline: Trunkline, workdir: Path, calls: int) -> None:
    (workdir / "pcap").symlink_to(PCAPS)
    process = await asyncio.create_subprocess_exec(
        "sipp",
        f"127.0.0.1:{trunkline.sip_port}",
        "-t", "t1",  # every call on one TCP connection
        "-sf", str(SCENARIO),
        "-s", NUMBER,
        "-i", "127.0.0.1",
        "-p", str(sipp_signalling_port()),
        "-mp", str(sipp_media_port()),
        "-m", str(calls),
        "-l", "2",
        "-timeout", "60s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
        cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        errors = await asyncio.to_thread(_error_log, workdir)
        raise AssertionError(
            f"sipp exited {process.returncode}: {(errors or stderr.decode())[-2000:]}"
        )


@pytest.mark.settings(sip_tcp=True)
async def test_sipp_calls_over_one_tcp_connection(
    trunkline: Trunkline, echo_agent: EchoAgent, tmp_path: Path
) -> None:
    require(await asyncio.to_thread(sipp_available), "sipp (Debian sip-tester)")
    number = await trunkline.number("auto_accept", echo_agent.url)
    await run_sipp_tcp(trunkline, tmp_path, calls=4)
    repository = trunkline.services.repository
    for _ in range(100):
        calls = await repository.list_calls(number.organization_id, limit=10)
        if len(calls) == 4 and all(c.status == "completed" for c in calls):
            break
        await asyncio.sleep(0.1)
    assert [c.status for c in calls] == ["completed"] * 4
    assert len(echo_agent.calls) == 4
    for agent_call in echo_agent.calls:
        await asyncio.wait_for(agent_call.closed.wait(), 10)
        assert agent_call.media_bytes > 160 * 25
        assert agent_call.digits == ["1"]
    gateway = trunkline.gateway
    assert gateway.ports.in_use == 0
    assert gateway.endpoint.malformed_dropped == 0


def options(branch: str, body_length: int = 0) -> bytes:
    return (
        f"OPTIONS sip:trunkline@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK{branch}\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:trunkline@127.0.0.1>\r\n"
        f"Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        f"Content-Length: {body_length}\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return head


@pytest.mark.settings(sip_tcp=True)
async def test_split_and_coalesced_requests_are_answered_on_their_connection(
    trunkline: Trunkline,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", trunkline.sip_port)
    try:
        first, second = options("a1"), options("a2")
        writer.write(b"\r\n\r\n" + first[:30])  # a keep-alive, then a request in pieces
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(first[30:] + second)  # its end and a whole second one, coalesced
        answers = [await read_response(reader), await read_response(reader)]
        assert all(a.startswith(b"SIP/2.0 200 OK") for a in answers)
        assert {b"a1@probe" in a for a in answers} == {True, False}
        assert b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKa2" in answers[1]
        streams = trunkline.gateway.streams["TCP"]
        assert len(streams.connections) == 1
    finally:
        writer.close()


@pytest.mark.settings(sip_tcp=True)
async def test_an_oversized_message_closes_its_connection_and_is_counted(
    trunkline: Trunkline,
) -> None:
    closed = metrics.SIP_CONNECTIONS_CLOSED.labels("tcp", "framing")
    before = closed._value.get()
    reader, writer = await asyncio.open_connection("127.0.0.1", trunkline.sip_port)
    try:
        writer.write(options("big", body_length=10_000_000))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
        assert closed._value.get() == before + 1
    finally:
        writer.close()
    # the listener still serves others
    reader, writer = await asyncio.open_connection("127.0.0.1", trunkline.sip_port)
    try:
        writer.write(options("after"))
        assert (await read_response(reader)).startswith(b"SIP/2.0 200 OK")
    finally:
        writer.close()


@pytest.mark.settings(sip_tcp=True, sip_max_connections=1, sip_connection_idle_seconds=1.0)
async def test_connections_beyond_the_limit_and_idle_ones_are_closed(trunkline: Trunkline) -> None:
    limited = metrics.SIP_CONNECTIONS_CLOSED.labels("tcp", "limit")
    idle = metrics.SIP_CONNECTIONS_CLOSED.labels("tcp", "idle")
    open_gauge = metrics.SIP_CONNECTIONS.labels("tcp")
    limited_before, idle_before = limited._value.get(), idle._value.get()
    gauge_before = open_gauge._value.get()
    first_reader, first = await asyncio.open_connection("127.0.0.1", trunkline.sip_port)
    try:
        first.write(options("first"))
        assert (await read_response(first_reader)).startswith(b"SIP/2.0 200 OK")
        assert open_gauge._value.get() == gauge_before + 1
        second_reader, second = await asyncio.open_connection("127.0.0.1", trunkline.sip_port)
        try:
            second.write(options("second"))
            assert await asyncio.wait_for(second_reader.read(), 5) == b""  # over the limit
        finally:
            second.close()
        assert limited._value.get() == limited_before + 1
        # the first one, silent from now on, is closed within a sweep or two
        assert await asyncio.wait_for(first_reader.read(), 5) == b""
        assert idle._value.get() == idle_before + 1
        for _ in range(50):
            if open_gauge._value.get() == gauge_before:
                break
            await asyncio.sleep(0.02)
        assert open_gauge._value.get() == gauge_before
        assert not trunkline.gateway.streams["TCP"].connections
    finally:
        first.close()
