"""Inbound edges on real sockets: the incoming-call webhook, RTP bleed, malformed SIP."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.gateway.conftest import NUMBER, PASS_THROUGH, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from trunkline.gateway.rtp.leg import RtpLeg
from trunkline.gateway.rtp.packet import build_packet, parse_packet
from trunkline.gateway.sip.message import SipResponse, parse_message
from trunkline.storage.models import Call, InboundRouting


class DecisionHook:
    """The user's incoming-call webhook: records each request and replies as told."""

    def __init__(self) -> None:
        self.reply: dict[str, Any] = {}
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        return web.json_response(self.reply)


@pytest.fixture
async def hook() -> AsyncIterator[DecisionHook]:
    decision = DecisionHook()
    app = web.Application()
    app.router.add_post("/incoming", decision.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    decision.url = f"http://127.0.0.1:{port}/incoming"
    try:
        yield decision
    finally:
        await runner.cleanup()


async def test_webhook_answer_bridges_to_the_url_it_returns(
    trunkline: Trunkline, echo_agent: EchoAgent, hook: DecisionHook
) -> None:
    await trunkline.number("webhook", hook.url)
    hook.reply = {"action": "answer", "client_websocket_url": echo_agent.url}
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    ((headers, body),) = hook.requests
    assert body["event_type"] == "phone.incoming_call"
    assert (body["local_phone_number"], body["remote_phone_number"]) == (NUMBER, "+14155550123")
    assert body["agent_identities"][0]["agent_handle"] == "sales"
    assert headers["Content-Type"] == "application/json"
    assert len(echo_agent.calls) == 1


@pytest.mark.parametrize(
    ("reply", "status", "detail"),
    [
        ({"action": "reject"}, 603, "declined by webhook"),
        ({"unexpected": True}, 480, "agent unreachable"),
        (["not", "an", "object"], 480, "agent unreachable"),
    ],
)
async def test_webhook_reject_declines_and_nonsense_does_not_answer(
    trunkline: Trunkline,
    echo_agent: EchoAgent,
    hook: DecisionHook,
    reply: Any,
    status: int,
    detail: str,
) -> None:
    number = await trunkline.number("webhook", hook.url, ws=echo_agent.url)
    hook.reply = reply  # type: ignore[assignment]
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        final = await carrier.invite(NUMBER)
    finally:
        carrier.close()
    assert final.status == status
    assert len(hook.requests) == 1
    assert not echo_agent.calls
    (call,) = await trunkline.services.repository.list_calls(number.organization_id)
    for _ in range(100):
        stored = await trunkline.services.repository.get_call(call.id)
        if stored is not None and stored.status == "failed":
            break
        await asyncio.sleep(0.02)
    assert stored is not None
    assert (stored.status, stored.hangup_reason, stored.failure_detail) == (
        "failed",
        "rejected",
        detail,
    )


async def stored_call(trunkline: Trunkline, organization_id: str, status: str) -> Call:
    (call,) = await trunkline.services.repository.list_calls(organization_id)
    for _ in range(100):
        stored = await trunkline.services.repository.get_call(call.id)
        if stored is not None and stored.status == status:
            return stored
        await asyncio.sleep(0.02)
    raise AssertionError(f"call never reached {status}: {stored}")


PRIVATE_ALLOWED = pytest.mark.settings(allow_private_targets=True)
PRIVATE_REFUSED = pytest.mark.settings(allow_private_targets=False)


@pytest.mark.parametrize(
    "url",
    [
        # refused even where private targets are allowed
        pytest.param("http://2130706433/hook", marks=PRIVATE_ALLOWED),
        pytest.param("http://0x7f.1/hook", marks=PRIVATE_ALLOWED),
        pytest.param("http://[::127.0.0.1]/hook", marks=PRIVATE_REFUSED),
    ],
)
async def test_a_webhook_url_the_guard_refuses_is_an_unreachable_webhook(
    trunkline: Trunkline, url: str
) -> None:
    number = await trunkline.number("webhook", url)  # stored as is, past the API's checks
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        final = await carrier.invite(NUMBER)
    finally:
        carrier.close()
    assert (final.status, final.reason) == (480, "Agent Unavailable")
    stored = await stored_call(trunkline, number.organization_id, "failed")
    assert (stored.hangup_reason, stored.failure_detail) == ("rejected", "agent unreachable")


@pytest.mark.parametrize("trunkline_overrides", [{"transcription": "off", "text_to_speech": "off"}])
async def test_a_webhook_url_the_guard_refuses_falls_through_to_voicemail(
    trunkline: Trunkline,
) -> None:
    number = await trunkline.number(
        "webhook",
        "http://2130706433/hook",
        inbound_routing=InboundRouting(voicemail_message="Leave a message."),
    )
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    stored = await stored_call(trunkline, number.organization_id, "completed")
    assert stored.hangup_reason == "voicemail"


@PASS_THROUGH
async def test_rtp_from_elsewhere_before_the_caller_speaks_does_not_take_the_call(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    intruder.bind(("127.0.0.2", 0))
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        assert carrier.remote_media is not None
        for index in range(20):  # first to arrive, well-formed, negotiated payload type
            packet = build_packet(
                b"\x00" * 160, payload_type=0, sequence=index, timestamp=0, ssrc=7
            )
            intruder.sendto(packet, carrier.remote_media)
        (live,) = trunkline.gateway.calls.values()
        assert live.bridge is not None and isinstance(live.bridge.caller, RtpLeg)
        session = live.bridge.caller.session
        for _ in range(100):
            if session.counters.dropped_unconfirmed_source == 20:
                break
            await asyncio.sleep(0.01)
        assert session.counters.dropped_unconfirmed_source == 20
        assert session.learned_source is None
        frames = [os.urandom(160).replace(b"\xff", b"\xfe") for _ in range(10)]
        await carrier.send_audio(frames)
        assert await carrier.received_audio(1600) == b"".join(frames)
        assert session.learned_source == ("127.0.0.1", carrier.rtp_port)
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        intruder.close()
        carrier.close()


@PASS_THROUGH
async def test_rtp_from_a_foreign_source_is_dropped_after_learning(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    intruder.bind(("127.0.0.2", 0))
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        frames = [os.urandom(160).replace(b"\xff", b"\xfe") for _ in range(10)]
        await carrier.send_audio(frames)
        assert await carrier.received_audio(1600) == b"".join(frames)
        assert carrier.remote_media is not None
        for index in range(20):  # same payload type, plausible sequence numbers
            packet = build_packet(
                b"\x00" * 160, payload_type=0, sequence=index, timestamp=0, ssrc=7
            )
            intruder.sendto(packet, carrier.remote_media)
        (live,) = trunkline.gateway.calls.values()
        assert live.bridge is not None and isinstance(live.bridge.caller, RtpLeg)
        session = live.bridge.caller.session
        for _ in range(100):  # ``counters`` is a snapshot: read afresh each time
            if session.counters.dropped_foreign_source == 20:
                break
            await asyncio.sleep(0.01)
        assert session.counters.dropped_foreign_source == 20
        assert await carrier.received_audio(160, wait_seconds=0.5) == b""  # none echoed back
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        intruder.close()
        carrier.close()
    assert echo_agent.calls[0].media_bytes == 1600


def _exchange(port: int, datagram: bytes, wait: float = 0.5) -> SipResponse | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(wait)
        sock.sendto(datagram, ("127.0.0.1", port))
        try:
            data = sock.recv(70_000)
        except TimeoutError:
            return None
    message = parse_message(data)
    assert isinstance(message, SipResponse)
    return message


VALID_HEAD = (
    "OPTIONS sip:trunkline@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKmalformed{n}\r\n"
    "From: <sip:probe@127.0.0.1>;tag=1\r\n"
    "To: <sip:trunkline@127.0.0.1>\r\n"
    "Call-ID: malformed-{n}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
)


async def test_malformed_sip_gets_400_or_is_dropped_and_counted(trunkline: Trunkline) -> None:
    port = trunkline.sip_port
    gateway = trunkline.gateway
    missing_call_id = VALID_HEAD.format(n=1).replace("Call-ID: malformed-1\r\n", "")
    response = await asyncio.to_thread(
        _exchange, port, (missing_call_id + "Content-Length: 0\r\n\r\n").encode()
    )
    assert response is not None and response.status == 400
    assert "Call-ID" in response.reason
    too_short = (VALID_HEAD.format(n=2) + "Content-Length: 500\r\n\r\nv=0\r\n").encode()
    response = await asyncio.to_thread(_exchange, port, too_short)
    assert response is not None and response.status == 400  # UDP: RFC 3261 §18.3
    dropped_before = gateway.malformed_dropped
    unanswerable = [
        os.urandom(300),  # garbage
        b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1",  # truncated
        b"SIP/2.0 200 OK\r\n" + os.urandom(65_000),  # the largest UDP datagram, garbage
        b"\x00" * 1000,
    ]
    for datagram in unanswerable:
        assert await asyncio.to_thread(_exchange, port, datagram, 0.2) is None
    assert gateway.malformed_dropped - dropped_before == len(unanswerable)
    ok = await asyncio.to_thread(
        _exchange, port, (VALID_HEAD.format(n=4) + "Content-Length: 0\r\n\r\n").encode()
    )
    assert ok is not None and ok.status == 200  # still serving


async def test_an_invite_with_an_unparseable_from_gets_400_and_leaves_nothing_behind(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        for cseq in range(1, 51):
            invite = carrier.request("INVITE", NUMBER, cseq)
            invite.headers.remove("From")
            invite.headers.add("From", "<sip:+14155550123@127.0.0.1;tag=lost-bracket")
            carrier.sip.sendto(invite.serialize(), carrier.target)
            response = await carrier.response(5.0)
            assert response.status == 400, response
        assert trunkline.gateway.endpoint.transactions == 0  # nothing kept for any of them
        assert trunkline.gateway.calls == {}
        assert (await carrier.invite(NUMBER, cseq=51)).status == 200  # still serving
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()


async def test_an_invite_whose_call_flow_fails_still_gets_a_final_response(
    trunkline: Trunkline, echo_agent: EchoAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)

    def broken(user: str | None) -> str | None:
        raise RuntimeError("a fault inside the call flow")

    monkeypatch.setattr("trunkline.gateway.inbound_invites.normalise_e164", broken)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 500
    finally:
        carrier.close()


# One even RTP port (and its RTCP neighbour): room for one call. Random below the
# ephemeral range (32768+), so concurrent runs and client sockets rarely collide on it.
ONE_CALL_RTP_PORT = 32000 + 2 * secrets.randbelow(380)


@pytest.mark.settings(rtp_port_min=ONE_CALL_RTP_PORT, rtp_port_max=ONE_CALL_RTP_PORT + 1)
async def test_at_capacity_the_call_gets_503_with_retry_after(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    assert trunkline.gateway.ports.free == 1
    first = await CarrierCall.open(trunkline.sip_port)
    second = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await first.invite(NUMBER)).status == 200
        busy = await second.invite(NUMBER)
        assert (busy.status, busy.headers.get("Retry-After")) == (503, "30")
        assert (await first.bye(NUMBER)).status == 200
    finally:
        first.close()
        second.close()


async def test_caller_hears_paced_silence_while_the_agent_is_quiet(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    """Carriers end calls whose RTP stops; a quiet agent still means 20 ms silence packets."""
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        packets = []
        async with asyncio.timeout(5):
            while len(packets) < 20:
                packets.append(parse_packet(await carrier.rtp_inbox.queue.get()))
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    assert all(bytes(p.payload) == b"\xff" * 160 for p in packets)
    sequences = [p.sequence for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(sequences, sequences[1:], strict=False))
    stamps = [p.timestamp for p in packets]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in zip(stamps, stamps[1:], strict=False))
