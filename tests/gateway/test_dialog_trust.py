"""In-dialog requests on real sockets: both tags, the far end's address or trunk auth, budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.gateway.conftest import NUMBER, Api, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall, Inbox, bind_udp
from tests.gateway.test_metrics import scrape, value
from tests.gateway.test_outbound_calls import place, register_byo_number, wait_status
from tests.gateway.test_trunk_security import (
    TRUNK_CREDENTIALS,
    UNTRUSTED_LOOPBACK,
    invite_with_credentials,
)
from trunkline.calls.live_call import LiveCall
from trunkline.gateway.rtp.leg import RtpLeg
from trunkline.gateway.sip.digest import Challenge
from trunkline.gateway.sip.message import (
    Address,
    SipRequest,
    SipResponse,
    parse_message,
    response_to,
)

pytestmark = TRUNK_CREDENTIALS

# The carrier on 127.0.0.1 is trusted; impostors on 127.0.0.2 are not.
TRUST_ONLY_THE_CARRIER = pytest.mark.settings(sip_trusted_sources="127.0.0.1/32")


async def impostor(of: CarrierCall, host: str = "127.0.0.1") -> CarrierCall:
    """Another party that knows the dialog's Call-ID and both tags, on its own sockets."""
    sip, sip_inbox, sip_port = await bind_udp(host, sip=True)
    rtp, rtp_inbox, rtp_port = await bind_udp(host)
    return CarrierCall(
        sip,
        sip_inbox,
        sip_port,
        rtp,
        rtp_inbox,
        rtp_port,
        of.target,
        call_id=of.call_id,
        from_tag=of.from_tag,
        to_header=of.to_header,
    )


def offer(rtp_port: int, host: str = "127.0.0.1") -> bytes:
    return (
        f"v=0\r\no=carrier 1 2 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    ).encode()


async def ask(party: CarrierCall, request: SipRequest) -> SipResponse:
    """Send a request and return its final response."""
    party.sip.sendto(request.serialize(), party.target)
    while True:
        response = await party.response(5.0)
        if response.status >= 200:
            return response


async def responses_within(party: CarrierCall, seconds: float) -> list[SipResponse]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    received: list[SipResponse] = []
    while (left := deadline - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(party.sip_inbox.queue.get(), left)
        except TimeoutError:
            break
        message = parse_message(data)
        if isinstance(message, SipResponse):
            received.append(message)
    return received


async def hang_up(party: CarrierCall) -> SipResponse:
    """BYE, and its own response (a re-INVITE's 200 may still be resent meanwhile)."""
    party.sip.sendto(party.request("BYE", NUMBER, 90).serialize(), party.target)
    while (response := await party.response(5.0)).cseq[1] != "BYE":
        pass
    return response


def live_call(trunkline: Trunkline, carrier: CarrierCall) -> LiveCall:
    call = trunkline.gateway.calls[carrier.call_id]
    assert not call.ended and call.answered
    return call


def caller_media_target(call: LiveCall) -> tuple[str, int] | None:
    assert call.bridge is not None and isinstance(call.bridge.caller, RtpLeg)
    return call.bridge.caller.session.remote


async def test_wrong_or_missing_tags_get_481_once_and_change_nothing(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        call = live_call(trunkline, carrier)
        media_target = caller_media_target(call)
        wrong_from = carrier.request("BYE", NUMBER, 2)
        wrong_from.headers.set("From", "<sip:+14155550123@127.0.0.1>;tag=guessed")
        no_to_tag = carrier.request("BYE", NUMBER, 3)
        no_to_tag.headers.set("To", f"<sip:{NUMBER}@127.0.0.1>")
        wrong_to = carrier.request("INVITE", NUMBER, 4, offer(carrier.rtp_port + 100))
        wrong_to.headers.set("To", f"<sip:{NUMBER}@127.0.0.1>;tag=guessed")
        options = carrier.request("OPTIONS", NUMBER, 5)
        options.headers.set("To", f"<sip:{NUMBER}@127.0.0.1>")
        for forged in (wrong_from, no_to_tag, wrong_to, options):
            carrier.sip.sendto(forged.serialize(), carrier.target)
        answers = await responses_within(carrier, 2.0)  # a retransmitted 481 would show here
        assert sorted((r.status, r.cseq[1]) for r in answers) == [
            (481, "BYE"),
            (481, "BYE"),
            (481, "INVITE"),
            (481, "OPTIONS"),
        ]
        assert trunkline.gateway.calls.get(carrier.call_id) is call and not call.ended
        assert caller_media_target(call) == media_target
        assert not echo_agent.calls[0].closed.is_set()
        assert trunkline.gateway.dialog_refused["dialog_mismatch"] == 4
        scraped = await scrape(trunkline)
        refused = "trunkline_sip_requests_refused_total"
        assert value(scraped, refused, reason="dialog_mismatch") == 4
        for reason in ("dialog_stranger", "cancel_mismatch", "ack_stranger"):
            assert (refused, (("reason", reason),)) in scraped  # every reason, from the start
        assert (await hang_up(carrier)).status == 200
        await asyncio.wait_for(echo_agent.calls[0].closed.wait(), 5)
    finally:
        carrier.close()


@TRUST_ONLY_THE_CARRIER
async def test_bye_and_reinvite_from_another_address_are_challenged_and_change_nothing(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    attacker: CarrierCall | None = None
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        call = live_call(trunkline, carrier)
        media_target = caller_media_target(call)
        attacker = await impostor(carrier, host="127.0.0.2")
        bye = await ask(attacker, attacker.request("BYE", NUMBER, 2))
        reinvite = attacker.request("INVITE", NUMBER, 3, offer(attacker.rtp_port, "127.0.0.2"))
        moved = await ask(attacker, reinvite)
        guessed = attacker.request("BYE", NUMBER, 4)
        uri = f"sip:{NUMBER}@127.0.0.1:{trunkline.sip_port}"
        challenge = Challenge.parse(bye.headers.get("WWW-Authenticate") or "")
        guessed.headers.add("Authorization", challenge.authorization("x", "y", "BYE", uri))
        denied = await ask(attacker, guessed)
        assert (bye.status, moved.status, denied.status) == (401, 401, 403)
        assert trunkline.gateway.calls.get(carrier.call_id) is call and not call.ended
        assert caller_media_target(call) == media_target
        assert not echo_agent.calls[0].closed.is_set()
        assert trunkline.gateway.dialog_refused["dialog_stranger"] == 3
        # The far end itself still moves its media and hangs up.
        own_reinvite = carrier.request("INVITE", NUMBER, 5, offer(carrier.rtp_port + 2))
        assert (await ask(carrier, own_reinvite)).status == 200
        carrier.sip.sendto(carrier.request("ACK", NUMBER, 5).serialize(), carrier.target)
        assert caller_media_target(call) == ("127.0.0.1", carrier.rtp_port + 2)
        assert (await hang_up(carrier)).status == 200
        await asyncio.wait_for(echo_agent.calls[0].closed.wait(), 5)
    finally:
        carrier.close()
        if attacker is not None:
            attacker.close()


@UNTRUSTED_LOOPBACK
async def test_untrusted_trunk_in_dialog_from_another_port_must_pass_digest(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    _, answered, carrier = await invite_with_credentials(
        trunkline, NUMBER, "carrier", "correct horse"
    )
    other_node = await impostor(carrier)
    try:
        assert answered.status == 200
        call = live_call(trunkline, carrier)
        challenge = await ask(other_node, other_node.request("BYE", NUMBER, 3))
        assert challenge.status == 401
        assert trunkline.gateway.calls.get(carrier.call_id) is call and not call.ended
        bye = other_node.request("BYE", NUMBER, 4)
        uri = f"sip:{NUMBER}@127.0.0.1:{trunkline.sip_port}"
        header = Challenge.parse(challenge.headers.get("WWW-Authenticate") or "").authorization(
            "carrier", "correct horse", "BYE", uri
        )
        bye.headers.add("Authorization", header)
        assert (await ask(other_node, bye)).status == 200
        await asyncio.wait_for(echo_agent.calls[0].closed.wait(), 5)
        assert carrier.call_id not in trunkline.gateway.calls
    finally:
        carrier.close()
        other_node.close()


@pytest.fixture
async def silent_agent_url() -> AsyncIterator[str]:
    """An agent address that accepts the connection and never answers the handshake."""
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/agent"
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_cancel_must_come_from_where_the_invite_came_from(
    trunkline: Trunkline, silent_agent_url: str
) -> None:
    await trunkline.number("auto_accept", silent_agent_url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    attacker = await impostor(carrier)
    try:
        invite = carrier.request("INVITE", NUMBER, 1, offer(carrier.rtp_port))
        carrier.sip.sendto(invite.serialize(), carrier.target)
        while (await carrier.response()).status != 180:
            pass
        call = trunkline.gateway.calls[carrier.call_id]
        branch = invite.top_via.branch
        forged = attacker.request("CANCEL", NUMBER, 1, branch=branch)
        assert (await ask(attacker, forged)).status == 481
        assert not call.canceled
        assert await responses_within(carrier, 0.3) == []  # no 487 to the caller
        assert trunkline.gateway.dialog_refused["cancel_mismatch"] == 1
        cancel = carrier.request("CANCEL", NUMBER, 1, branch=branch)
        carrier.sip.sendto(cancel.serialize(), carrier.target)
        answers = {(await carrier.response()).cseq[1]: None for _ in range(2)}
        assert set(answers) == {"CANCEL", "INVITE"}
        assert call.canceled
        ack = carrier.request("ACK", NUMBER, 1, branch=branch)
        carrier.sip.sendto(ack.serialize(), carrier.target)
    finally:
        carrier.close()
        attacker.close()


@TRUST_ONLY_THE_CARRIER
async def test_ack_from_a_stranger_does_not_stop_the_2xx_retransmissions(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    attacker: CarrierCall | None = None
    try:
        invite = carrier.request("INVITE", NUMBER, 1, offer(carrier.rtp_port))
        carrier.sip.sendto(invite.serialize(), carrier.target)
        while (ok := await carrier.response()).status != 200:
            pass
        carrier.to_header = ok.headers.get("To") or ""
        attacker = await impostor(carrier, host="127.0.0.2")
        attacker.sip.sendto(attacker.request("ACK", NUMBER, 1).serialize(), carrier.target)
        resent = await responses_within(carrier, 2.5)  # Timer G: 0.5 s, then 1 s, ...
        assert [r.status for r in resent][:1] == [200]
        assert trunkline.gateway.dialog_refused["ack_stranger"] >= 1
        carrier.sip.sendto(carrier.request("ACK", NUMBER, 1).serialize(), carrier.target)
        assert (await hang_up(carrier)).status == 200
    finally:
        carrier.close()
        if attacker is not None:
            attacker.close()


@UNTRUSTED_LOOPBACK
async def test_challenges_and_refusals_are_sent_once_without_a_transaction(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    unanswered = await CarrierCall.open(trunkline.sip_port)
    wrong = await CarrierCall.open(trunkline.sip_port)
    try:
        first = await wrong.invite(NUMBER)  # challenged, and ACKed
        assert first.status == 401
        guessed = wrong.request("INVITE", NUMBER, 2, offer(wrong.rtp_port))
        uri = f"sip:{NUMBER}@127.0.0.1:{trunkline.sip_port}"
        challenge = Challenge.parse(first.headers.get("WWW-Authenticate") or "")
        guessed.headers.add(
            "Authorization", challenge.authorization("carrier", "no", "INVITE", uri)
        )
        invite = unanswered.request("INVITE", NUMBER, 1, offer(unanswered.rtp_port))
        unanswered.sip.sendto(invite.serialize(), unanswered.target)
        wrong.sip.sendto(guessed.serialize(), wrong.target)
        # Neither ACKs. Timer G would resend at 0.5, 1.5 and 3.5 s.
        challenged, refused = await asyncio.gather(
            responses_within(unanswered, 4.0), responses_within(wrong, 4.0)
        )
        assert [r.status for r in challenged] == [401]
        assert [r.status for r in refused] == [403]
        unanswered.sip.sendto(invite.serialize(), unanswered.target)  # the INVITE again
        assert [r.status for r in await responses_within(unanswered, 1.0)] == [401]
        assert not echo_agent.calls
    finally:
        unanswered.close()
        wrong.close()


# The limit holds from the start: the call's setup (INVITE, ACK of the 401, INVITE with
# credentials, ACK of the 200) spends 4 of the burst of 2 x 5 = 10, and after 1 s the
# source has refilled 5 > 4, back to a full burst (the bucket holds no more than that).
# So the 30 in-dialog requests meet exactly the burst, plus what refills while sending.
@UNTRUSTED_LOOPBACK
@pytest.mark.settings(sip_unauthenticated_rate=5.0)
async def test_in_dialog_requests_spend_the_sources_budget(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    _, answered, carrier = await invite_with_credentials(
        trunkline, NUMBER, "carrier", "correct horse"
    )
    try:
        assert answered.status == 200
        gateway = trunkline.gateway
        assert gateway.budget.dropped == 0  # the setup fit in the burst
        await asyncio.sleep(1.0)  # the source's budget refills to its burst of 10
        for cseq in range(3, 33):
            carrier.sip.sendto(carrier.request("OPTIONS", NUMBER, cseq).serialize(), carrier.target)
        answers = await responses_within(carrier, 1.0)
        assert 10 <= len(answers) <= 12  # the burst, plus what refilled while sending
        assert all(r.status == 200 for r in answers)
        assert gateway.budget.dropped == 30 - len(answers)
        assert (await hang_up(carrier)).status == 200  # 1 s later: 5 tokens again
    finally:
        carrier.close()


async def test_the_ack_of_a_reinvite_stops_its_2xx(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        assert (await carrier.invite(NUMBER)).status == 200
        call = live_call(trunkline, carrier)
        reinvite = carrier.request("INVITE", NUMBER, 2, offer(carrier.rtp_port))
        assert (await ask(carrier, reinvite)).status == 200
        carrier.sip.sendto(carrier.request("ACK", NUMBER, 2).serialize(), carrier.target)
        # Unacknowledged, the 200 would come again at 0.5 and 1.5 s (and Timer H would
        # end the call as if the ACK had been lost).
        assert await responses_within(carrier, 2.0) == []
        assert trunkline.gateway.calls.get(carrier.call_id) is call and not call.ended
        stale = carrier.request("ACK", NUMBER, 1)  # the first INVITE's ACK, late: no effect
        carrier.sip.sendto(stale.serialize(), carrier.target)
        assert (await hang_up(carrier)).status == 200
    finally:
        carrier.close()


async def next_request(inbox: Inbox, method: str) -> SipRequest:
    while True:
        message = parse_message(await asyncio.wait_for(inbox.queue.get(), 10))
        if isinstance(message, SipRequest) and message.method == method:
            return message


def callee_bye(invite: SipRequest, via: tuple[str, int], cseq: int) -> SipRequest:
    """The callee's in-dialog BYE for our INVITE answered with To-tag ``callee``."""
    bye = SipRequest(method="BYE", uri=Address.parse(invite.headers.get("Contact") or "").uri)
    bye.headers.add("Via", f"SIP/2.0/UDP {via[0]}:{via[1]};branch=z9hG4bKbye{cseq}")
    bye.headers.add("From", f"{invite.headers.get('To')};tag=callee")
    bye.headers.add("To", invite.headers.get("From") or "")
    bye.headers.add("Call-ID", invite.call_id)
    bye.headers.add("CSeq", f"{cseq} BYE")
    bye.headers.add("Max-Forwards", "70")
    return bye


@TRUST_ONLY_THE_CARRIER
async def test_outbound_call_is_not_ended_by_a_bye_from_another_address(
    trunkline: Trunkline, echo_agent: EchoAgent, api: Api
) -> None:
    trunk, trunk_inbox, trunk_port = await bind_udp(sip=True)
    media, _, media_port = await bind_udp()
    attacker, attacker_inbox, attacker_port = await bind_udp("127.0.0.2", sip=True)
    try:
        await register_byo_number(api, trunk_port, "unused", echo_agent.url)
        placed = await place(api)
        invite = await next_request(trunk_inbox, "INVITE")
        trunkline_sip = trunk_inbox.last_source
        ok = response_to(invite, 200, to_tag="callee")
        ok.headers.add("Contact", f"<sip:callee@127.0.0.1:{trunk_port}>")
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = offer(media_port)
        trunk.sendto(ok.serialize(), trunkline_sip)
        await next_request(trunk_inbox, "ACK")
        await wait_status(trunkline, placed["id"], {"answered"})
        forged = callee_bye(invite, ("127.0.0.2", attacker_port), 1)
        attacker.sendto(forged.serialize(), trunkline_sip)
        refused = parse_message(await asyncio.wait_for(attacker_inbox.queue.get(), 5))
        assert isinstance(refused, SipResponse) and refused.status == 401
        call = trunkline.gateway.calls[invite.call_id]
        assert call.answered and not call.ended
        trunk.sendto(callee_bye(invite, ("127.0.0.1", trunk_port), 2).serialize(), trunkline_sip)
        ended = await wait_status(trunkline, placed["id"], {"completed"})
        assert ended.hangup_reason == "remote"
    finally:
        trunk.close()
        media.close()
        attacker.close()


async def test_an_invite_for_a_dialog_that_does_not_exist_gets_481_and_is_no_new_call(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    stray = await CarrierCall.open(trunkline.sip_port)
    try:
        stray.to_header = f"<sip:{NUMBER}@127.0.0.1>;tag=from-a-dialog-long-gone"
        refused = await ask(stray, stray.request("INVITE", NUMBER, 1, offer(stray.rtp_port)))
        assert refused.status == 481
        assert trunkline.gateway.calls == {}
        assert trunkline.gateway.dialog_refused["no_dialog"] == 1
        assert trunkline.gateway.endpoint.transactions == 0  # refused statelessly
    finally:
        stray.close()
