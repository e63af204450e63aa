"""SIP over TLS with SRTP (SDES) against baresip, and TLS trunks that fail verification."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import require
from tests.gateway.baresip_peer import BaresipConfig, baresip_available, running_baresip
from tests.gateway.conftest import NUMBER, Api, EchoAgent, Trunkline, free_port
from tests.gateway.test_outbound_calls import BYO_NUMBER, CALLEE, wait_status
from tests.gateway.tls_certs import Authority
from trunkline import metrics
from trunkline.gateway.rtp.leg import RtpLeg
from trunkline.gateway.sip_inbound_leg import SipInboundLeg
from trunkline.storage.models import Call

TLS_PORT_KEY = "sip_tls_port"


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "pki", "trunk-ca")


@pytest.fixture
def trunkline_overrides(authority: Authority) -> dict[str, Any]:
    issued = authority.issue("trunkline")
    return {
        "transcription": "off",
        TLS_PORT_KEY: free_port(socket.SOCK_STREAM),
        "sip_tls_cert": str(issued.cert),
        "sip_tls_key": str(issued.key),
        "sip_tls_ca": str(authority.ca_file),
        "sip_srtp": "mandatory",
    }


async def inject_forged_rtp(port: int, count: int) -> int:
    """Plain RTP-looking packets to an SRTP call's port: each fails authentication."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port)
    )
    try:
        for sequence in range(count):
            header = bytes([0x80, 0x00]) + sequence.to_bytes(2, "big") + bytes(8)
            transport.sendto(header + b"\xff" * 170)
        await asyncio.sleep(0.3)
    finally:
        transport.close()
    return count


def dominant_hertz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / 8000)[int(np.argmax(spectrum[1:])) + 1])


async def ended_call(trunkline: Trunkline, organization_id: str) -> Call:
    """The organisation's one call, once its record says it ended (written just after the BYE)."""
    repository = trunkline.services.repository
    for _ in range(100):
        (record,) = await repository.list_calls(organization_id, limit=5)
        if record.status == "completed":
            break
        await asyncio.sleep(0.1)
    return record


def tls_port(trunkline: Trunkline) -> int:
    streams = trunkline.gateway.streams["TLS"]
    assert streams.local_address is not None
    return streams.local_address[1]


@pytest.mark.parametrize("mediaenc", ["srtp-mand", "srtp"])  # RTP/SAVP, best-effort RTP/AVP
async def test_baresip_calls_over_tls_with_srtp(
    trunkline: Trunkline, echo_agent: EchoAgent, authority: Authority, tmp_path: Path, mediaenc: str
) -> None:
    require(
        await asyncio.to_thread(baresip_available), "baresip with its srtp, aufile, sndfile modules"
    )
    number = await trunkline.number("auto_accept", echo_agent.url)
    config = baresip_config(tmp_path, authority, "<sip:caller@127.0.0.1;transport=tls>", mediaenc)
    auth_failures = metrics.SRTP_DROPPED.labels("rtp", "auth")
    auth_before = auth_failures._value.get()
    async with running_baresip(config) as baresip:
        # the account's transport=tls carries the call over TLS
        response = await baresip.command("dial", f"sip:{NUMBER}@127.0.0.1:{tls_port(trunkline)}")
        assert response.get("ok"), response
        await baresip.event("CALL_ESTABLISHED")
        gateway = trunkline.gateway
        (call,) = gateway.calls.values()
        assert call.bridge is not None and isinstance(call.bridge.caller, RtpLeg)
        endpoint = call.bridge.caller.endpoint
        assert endpoint.srtp is not None  # SRTP at the socket
        assert len(gateway.streams["TLS"].connections) == 1
        await asyncio.sleep(3.0)  # tone out, echo back
        rtcp = endpoint.rtcp
        assert rtcp is not None and rtcp.srtp is endpoint.srtp
        for _ in range(100):  # baresip's first sender report comes a few seconds in
            if rtcp.state.packets_in:
                break
            await asyncio.sleep(0.1)
        assert rtcp.state.packets_in >= 1  # SRTCP from baresip, unprotected and read
        session = call.bridge.caller.session
        assert session.counters.packets_in > 50  # decrypted, parsed, accepted
        assert endpoint.srtp.dropped_rtp == 0
        forged = await inject_forged_rtp(endpoint.port, count=5)
        assert endpoint.srtp.dropped_rtp == forged
        await baresip.command("hangup")
        await baresip.event("CALL_CLOSED")
        output = baresip.output()
    assert "SRTP is Enabled" in output, output[-3000:]
    record = await ended_call(trunkline, number.organization_id)
    assert (record.status, record.hangup_reason) == ("completed", "remote")
    (agent_call,) = echo_agent.calls
    await asyncio.wait_for(agent_call.closed.wait(), 10)
    assert agent_call.media_bytes > 8000  # over a second of the caller's tone reached the agent
    heard = await asyncio.to_thread(config.decoded_audio)
    loud = np.abs(heard.astype(np.int32)) > 2000
    assert loud.sum() > 4000, "baresip did not hear the echoed tone"
    assert 430 <= dominant_hertz(heard) <= 450  # its own 440 Hz tone, back through the agent
    assert auth_failures._value.get() == auth_before + forged
    assert trunkline.gateway.ports.in_use == 0


async def test_trunkline_hangs_up_over_the_tls_connection_the_call_came_on(
    trunkline: Trunkline, echo_agent: EchoAgent, authority: Authority, tmp_path: Path
) -> None:
    require(await asyncio.to_thread(baresip_available), "baresip with its srtp module")
    echo_agent.hang_up_after_media = 40  # the agent stops the call: trunkline sends BYE
    number = await trunkline.number("auto_accept", echo_agent.url)
    config = baresip_config(tmp_path, authority, "<sip:caller@127.0.0.1;transport=tls>")
    async with running_baresip(config) as baresip:
        await baresip.command("dial", f"sip:{NUMBER}@127.0.0.1:{tls_port(trunkline)}")
        await baresip.event("CALL_ESTABLISHED")
        (call,) = trunkline.gateway.calls.values()
        assert isinstance(call.leg, SipInboundLeg) and call.leg.dialog.transport == "TLS"
        closed = await baresip.event("CALL_CLOSED", within=20)
    assert closed.get("param", "").lower().find("error") < 0, closed
    record = await ended_call(trunkline, number.organization_id)
    assert (record.status, record.hangup_reason) == ("completed", "local")
    assert trunkline.gateway.streams["TLS"].unsendable == 0


def free_port_pair(avoid: int) -> int:
    """A port free for SIP over UDP and TCP whose next port is free for TCP (baresip's TLS)."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM)
        if avoid in (port, port + 1):
            continue
        with contextlib.ExitStack() as held:
            try:
                for kind, number in ((socket.SOCK_DGRAM, port), (socket.SOCK_STREAM, port + 1)):
                    sock = held.enter_context(socket.socket(socket.AF_INET, kind))
                    sock.bind(("127.0.0.1", number))
            except OSError:
                continue
        return port
    raise AssertionError("no pair of free ports")


def baresip_config(
    tmp_path: Path, authority: Authority, aor: str, mediaenc: str = "srtp-mand", **extra: str
) -> BaresipConfig:
    params = "".join(f";{k}={v}" for k, v in {"mediaenc": mediaenc, **extra}.items())
    ctrl_port = free_port(socket.SOCK_STREAM)
    return BaresipConfig(
        tmp_path / "baresip",
        sip_port=free_port_pair(avoid=ctrl_port),
        ctrl_port=ctrl_port,
        # above the trunkline fixture's RTP range, below the kernel's ephemeral ports
        rtp_low=28400 + (free_port() % 200) * 20,
        account=f"{aor};regint=0{params}",
        certificate=authority.issue("baresip").combined,
        ca_file=authority.ca_file,
    )


async def register_tls_trunk(api: Api, trunk: str, echo_url: str) -> None:
    status, body = await api.post(
        "/numbers/register",
        {
            "phone_number": BYO_NUMBER,
            "provider": "twilio",
            "agent_id": "sales",
            "provider_config": {
                "trunk_address": trunk,
                "auth_username": "trunk-user",
                "auth_password": "unused",
            },
            "client_websocket_url": echo_url,
        },
    )
    assert status == 201, body


async def test_outbound_call_to_a_tls_trunk_uses_srtp_and_completes(
    trunkline: Trunkline, echo_agent: EchoAgent, api: Api, authority: Authority, tmp_path: Path
) -> None:
    require(await asyncio.to_thread(baresip_available), "baresip with its srtp module")
    config = baresip_config(
        tmp_path, authority, f"<sip:{CALLEE}@127.0.0.1;transport=tls>", answermode="auto"
    )
    async with running_baresip(config) as baresip:
        # baresip listens for TLS one port above its SIP port
        await register_tls_trunk(api, f"sips:127.0.0.1:{config.sip_port + 1}", echo_agent.url)
        status, placed = await api.post(
            "/place-call", {"from_number": BYO_NUMBER, "to_number": CALLEE}
        )
        assert status == 201, placed
        answered = await wait_status(trunkline, placed["id"], {"answered", "failed"})
        assert (answered.status, answered.failure_detail) == ("answered", None)
        await baresip.event("CALL_ESTABLISHED")
        (call,) = trunkline.gateway.calls.values()
        assert call.bridge is not None and isinstance(call.bridge.caller, RtpLeg)
        assert call.bridge.caller.endpoint.srtp is not None
        await asyncio.sleep(2.0)
        assert call.bridge.caller.session.counters.packets_in > 30
        status, body = await api.post(f"/calls/{placed['id']}/hangup", {})
        assert status == 200, body
        await baresip.event("CALL_CLOSED")
        output = baresip.output()
    ended = await wait_status(trunkline, placed["id"], {"completed", "failed"})
    assert (ended.status, ended.hangup_reason) == ("completed", "local")
    assert "SRTP is Enabled" in output
    (agent_call,) = echo_agent.calls
    await asyncio.wait_for(agent_call.closed.wait(), 10)
    assert agent_call.media_bytes > 4000  # baresip's tone, decrypted, reached the agent


async def test_a_tls_trunk_signed_by_another_ca_fails_the_dial_with_the_reason(
    trunkline: Trunkline, api: Api, tmp_path: Path
) -> None:
    rogue = Authority(tmp_path / "rogue", "rogue-ca").issue("trunk")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(rogue.cert, rogue.key)
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            received.append(await reader.read(4096))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        port = server.sockets[0].getsockname()[1]
        await register_tls_trunk(api, f"127.0.0.1:{port};transport=tls", "ws://127.0.0.1:9/a")
        status, body = await api.post(
            "/place-call", {"from_number": BYO_NUMBER, "to_number": CALLEE}
        )
    finally:
        server.close()
        await server.wait_closed()
    assert status == 502, body
    assert "TLS certificate of 127.0.0.1 not trusted" in body["detail"], body
    assert "certificate verify failed" in body["detail"] or "issuer" in body["detail"]
    assert not any(received), "an INVITE went to an unverified trunk"
    assert not trunkline.gateway.calls and trunkline.gateway.ports.in_use == 0


async def test_srtp_offered_over_plain_udp_is_refused_because_its_keys_would_be_in_clear(
    trunkline: Trunkline, echo_agent: EchoAgent, authority: Authority, tmp_path: Path
) -> None:
    require(await asyncio.to_thread(baresip_available), "baresip with its srtp module")
    await trunkline.number("auto_accept", echo_agent.url)
    config = baresip_config(tmp_path, authority, "<sip:caller@127.0.0.1>")
    async with running_baresip(config) as baresip:
        await baresip.command("dial", f"sip:{NUMBER}@127.0.0.1:{trunkline.sip_port}")
        closed = await baresip.event("CALL_CLOSED")
    assert closed.get("param") == "488 Not Acceptable Here (SRTP needs SIP over TLS)", closed
    assert not echo_agent.calls


async def test_requests_over_tls_are_answered_on_their_connection(
    trunkline: Trunkline, authority: Authority
) -> None:
    context = ssl.create_default_context(cafile=str(authority.ca_file))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", tls_port(trunkline), ssl=context, server_hostname="127.0.0.1"
    )
    try:
        writer.write(
            b"OPTIONS sips:trunkline@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtls1\r\n"
            b"From: <sips:probe@127.0.0.1>;tag=1\r\nTo: <sips:trunkline@127.0.0.1>\r\n"
            b"Call-ID: tls1@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"SIP/2.0 200 OK")
    assert b"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtls1" in head
    assert metrics.SIP_CONNECTIONS.labels("tls")._value.get() >= 1


async def test_a_client_trusting_another_ca_refuses_trunklines_certificate(
    trunkline: Trunkline, tmp_path: Path
) -> None:
    rogue = Authority(tmp_path / "rogue", "rogue-ca")
    context = ssl.create_default_context(cafile=str(rogue.ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(
            "127.0.0.1", tls_port(trunkline), ssl=context, server_hostname="127.0.0.1"
        )
    assert not trunkline.gateway.calls


def sips_invite(port: int, crypto: str, contact: str = "127.0.0.1:5999") -> bytes:
    sdp = (
        "v=0\r\no=probe 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/SAVP 0\r\na=crypto:{crypto}\r\n"
    ).encode()
    return (
        f"INVITE sips:{NUMBER}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKsips1\r\n"
        "From: <sips:probe@127.0.0.1>;tag=p1\r\nTo: <sips:" + NUMBER + "@127.0.0.1>\r\n"
        "Call-ID: sips1@probe\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Contact: <sips:probe@{contact}>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n"
    ).encode() + sdp


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def test_a_sips_invite_is_answered_with_a_sips_contact_and_srtp(
    trunkline: Trunkline, echo_agent: EchoAgent, authority: Authority
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    key = "1 AES_CM_128_HMAC_SHA1_32 inline:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"
    context = ssl.create_default_context(cafile=str(authority.ca_file))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", tls_port(trunkline), ssl=context, server_hostname="127.0.0.1"
    )
    try:
        writer.write(sips_invite(free_port() & ~1, key))
        while not (message := await read_message(reader)).startswith(b"SIP/2.0 200"):
            assert message.startswith((b"SIP/2.0 100", b"SIP/2.0 180")), message[:200]
        to = next(line for line in message.split(b"\r\n") if line.startswith(b"To:"))
        writer.write(
            b"ACK sips:trunkline@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKsips2\r\n"
            b"From: <sips:probe@127.0.0.1>;tag=p1\r\n" + to + b"\r\n"
            b"Call-ID: sips1@probe\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.write(
            b"BYE sips:trunkline@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKsips3\r\n"
            b"From: <sips:probe@127.0.0.1>;tag=p1\r\n" + to + b"\r\n"
            b"Call-ID: sips1@probe\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        bye_answer = await read_message(reader)
    finally:
        writer.close()
    port = tls_port(trunkline)
    assert f"Contact: <sips:trunkline@127.0.0.1:{port}>".encode() in message
    assert b"m=audio " in message and b" RTP/SAVP 0" in message
    (crypto,) = [line for line in message.split(b"\r\n") if line.startswith(b"a=crypto:")]
    assert crypto.startswith(b"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:")
    assert key.encode().split(b"inline:")[1] not in crypto  # our own key, not an echo of theirs
    assert bye_answer.startswith(b"SIP/2.0 200")


async def test_bye_goes_over_a_new_connection_to_the_contact_when_the_callers_closed(
    trunkline: Trunkline, echo_agent: EchoAgent, authority: Authority
) -> None:
    number = await trunkline.number("auto_accept", echo_agent.url)
    issued = authority.issue("caller")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(issued.cert, issued.key)
    byes: asyncio.Queue[bytes] = asyncio.Queue()

    async def caller_listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
            request = await read_message(reader)
            await byes.put(request)
            via = next(line for line in request.split(b"\r\n") if line.startswith(b"Via:"))
            rest = [
                line
                for line in request.split(b"\r\n")
                if line.startswith((b"From:", b"To:", b"Call-ID:", b"CSeq:"))
            ]
            writer.write(
                b"SIP/2.0 200 OK\r\n"
                + b"\r\n".join([via, *rest])
                + b"\r\nContent-Length: 0\r\n\r\n"
            )
            await writer.drain()
        writer.close()

    listener = await asyncio.start_server(caller_listener, "127.0.0.1", 0, ssl=server_context)
    try:
        contact = f"127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        context = ssl.create_default_context(cafile=str(authority.ca_file))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", tls_port(trunkline), ssl=context, server_hostname="127.0.0.1"
        )
        key = "1 AES_CM_128_HMAC_SHA1_80 inline:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"
        writer.write(sips_invite(free_port() & ~1, key, contact))
        while not (message := await read_message(reader)).startswith(b"SIP/2.0 200"):
            pass
        to = next(line for line in message.split(b"\r\n") if line.startswith(b"To:"))
        writer.write(
            b"ACK sips:trunkline@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKsips2\r\n"
            b"From: <sips:probe@127.0.0.1>;tag=p1\r\n" + to + b"\r\n"
            b"Call-ID: sips1@probe\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()  # the caller goes away; its Contact still listens
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        (record,) = await trunkline.services.repository.list_calls(number.organization_id, limit=5)
        assert await trunkline.gateway.hangup(record.id)  # what POST /calls/{id}/hangup does
        bye = await asyncio.wait_for(byes.get(), 10)
    finally:
        listener.close()
        await listener.wait_closed()
    assert bye.startswith(b"BYE sips:probe@")
    assert b"Via: SIP/2.0/TLS " in bye and b"Call-ID: sips1@probe" in bye
