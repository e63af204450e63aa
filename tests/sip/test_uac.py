"""The outbound INVITE core, driven directly: challenges, answer, ACK, CANCEL and BYE."""

from __future__ import annotations

import pytest

from trunkline.gateway.sip.digest import DigestServer
from trunkline.gateway.sip.message import SipRequest, parse_message, response_to
from trunkline.gateway.sip.uac import (
    Answered,
    Credentials,
    Failed,
    OutboundInvite,
    Resend,
    Ringing,
)

SDP = b"v=0\r\n"


ALICE = Credentials("alice", "s3cret")


def outbound(credentials: Credentials | None = ALICE) -> OutboundInvite:
    return OutboundInvite(
        request_uri="sip:+14155550142@trunk.example.com",
        from_number="+15550100777",
        to_number="+14155550142",
        via_host="203.0.113.5",
        via_port=5060,
        contact="<sip:trunkline@203.0.113.5:5060>",
        offer=SDP,
        destination=("198.51.100.7", 5060),
        credentials=credentials,
    )


def reparse(request: SipRequest) -> SipRequest:
    """What the far end sees: the serialized request parsed again."""
    message = parse_message(request.serialize())
    assert isinstance(message, SipRequest)
    return message


def test_invite_carries_offer_contact_and_a_fresh_branch_per_attempt() -> None:
    uac = outbound()
    first = reparse(uac.invite())
    assert first.method == "INVITE" and first.body == SDP
    assert first.headers.get("Contact") == "<sip:trunkline@203.0.113.5:5060>"
    assert first.headers.get("To") == "<sip:+14155550142@trunk.example.com>"
    assert first.top_via.branch.startswith("z9hG4bK")
    second = reparse(uac.invite())
    assert second.top_via.branch != first.top_via.branch
    assert second.cseq[0] == first.cseq[0] + 1
    assert second.call_id == first.call_id


@pytest.mark.parametrize(
    ("status", "asked", "answered"),
    [
        (401, "WWW-Authenticate", "Authorization"),
        (407, "Proxy-Authenticate", "Proxy-Authorization"),
    ],
)
@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_challenge_is_answered_once_with_credentials_the_server_accepts(
    status: int, asked: str, answered: str, algorithm: str
) -> None:
    server = DigestServer("trunk.example.com", b"k" * 32, algorithm)
    uac = outbound()
    invite = uac.invite()
    challenge = response_to(invite, status, to_tag="t1")
    challenge.headers.add(asked, server.challenge(source="192.0.2.7"))
    step = uac.on_response(challenge)
    assert isinstance(step, Resend)
    retry = reparse(step.invite)
    header = retry.headers.get(answered)
    assert header is not None
    where = {"uri": retry.uri, "source": "192.0.2.7"}
    assert server.verify(header, "INVITE", {"alice": "other"}, **where) == "denied"
    assert server.verify(header, "INVITE", {"alice": "s3cret"}, **where) == "ok"
    # A second challenge with a new nonce, not marked stale: the password is wrong.
    again = response_to(step.invite, status, to_tag="t2")
    again.headers.add(asked, server.challenge(now=1, source="192.0.2.7"))
    assert uac.on_response(again) == Failed(status, "trunk rejected the credentials")


def test_stale_nonce_is_answered_again() -> None:
    server = DigestServer("trunk.example.com", b"k" * 32)
    uac = outbound()
    first = response_to(uac.invite(), 401, to_tag="t")
    first.headers.add("WWW-Authenticate", server.challenge(now=1000, source="192.0.2.7"))
    step = uac.on_response(first)
    assert isinstance(step, Resend)
    stale = response_to(step.invite, 401, to_tag="t")
    stale.headers.add(
        "WWW-Authenticate", server.challenge(now=2000, source="192.0.2.7", stale=True)
    )
    assert isinstance(uac.on_response(stale), Resend)


def test_challenge_without_credentials_fails() -> None:
    uac = outbound(credentials=None)
    challenge = response_to(uac.invite(), 407, to_tag="t")
    challenge.headers.add("Proxy-Authenticate", 'Digest realm="x", nonce="n"')
    assert uac.on_response(challenge) == Failed(407, "trunk requires authentication")


def test_provisional_and_final_responses() -> None:
    uac = outbound()
    invite = uac.invite()
    assert uac.on_response(response_to(invite, 100)) is None
    assert uac.on_response(response_to(invite, 180, to_tag="t")) == Ringing(180)
    assert uac.on_response(response_to(invite, 183, to_tag="t")) == Ringing(183)
    assert uac.on_response(response_to(invite, 486, to_tag="t")) == Failed(486, "Busy Here")


def test_answer_builds_ack_and_dialog_from_the_2xx() -> None:
    uac = outbound()
    invite = uac.invite()
    ok = response_to(invite, 200, to_tag="callee")
    ok.headers.add("Contact", "<sip:callee@198.51.100.7:5070>")
    ok.headers.add("Record-Route", "<sip:proxy1.example.com;lr>")
    ok.headers.add("Record-Route", "<sip:proxy2.example.com;lr>")
    ok.body = b"v=0\r\nanswer"
    step = uac.on_response(ok)
    assert isinstance(step, Answered)
    assert step.sdp == b"v=0\r\nanswer"
    ack = reparse(step.ack)
    assert (ack.method, ack.uri) == ("ACK", "sip:callee@198.51.100.7:5070")
    assert ack.cseq == (invite.cseq[0], "ACK")
    assert ack.headers.get("To") == "<sip:+14155550142@trunk.example.com>;tag=callee"
    assert ack.headers.get_all("Route") == [
        "<sip:proxy2.example.com;lr>",
        "<sip:proxy1.example.com;lr>",
    ]
    assert ack.top_via.branch != invite.top_via.branch  # a 2xx ACK is its own transaction
    bye = reparse(uac.bye())
    assert (bye.method, bye.uri) == ("BYE", "sip:callee@198.51.100.7:5070")
    assert bye.cseq[0] == invite.cseq[0] + 1
    assert bye.headers.get("From") == invite.headers.get("From")


def test_cancel_matches_the_pending_invite() -> None:
    uac = outbound()
    invite = uac.invite()
    cancel = reparse(uac.cancel())
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.cseq == (invite.cseq[0], "CANCEL")
    assert cancel.headers.get("To") == invite.headers.get("To")
