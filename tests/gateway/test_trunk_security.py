"""Inbound trunk security on real sockets: trusted networks, digest auth, per-source budget."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import NUMBER, EchoAgent, Trunkline
from tests.gateway.sip_peer import CarrierCall
from trunkline.gateway.sip.digest import Challenge
from trunkline.gateway.sip.message import SipResponse

UNKNOWN_NUMBER = "+15550109999"


# The trunk's digest credentials, for the tests whose carrier is an untrusted source.
TRUNK_CREDENTIALS = pytest.mark.settings(
    sip_trunk_username="carrier", sip_trunk_password="correct horse"
)
pytestmark = TRUNK_CREDENTIALS


# The test carrier (on 127.0.0.1) is an untrusted source.
UNTRUSTED_LOOPBACK = pytest.mark.settings(sip_trusted_sources="192.0.2.0/24")


async def invite_with_credentials(
    trunkline: Trunkline, number: str, username: str, password: str
) -> tuple[SipResponse, SipResponse, CarrierCall]:
    carrier = await CarrierCall.open(trunkline.sip_port)
    challenge = await carrier.invite(number)
    header = challenge.headers.get("WWW-Authenticate")
    assert header is not None
    uri = f"sip:{number}@127.0.0.1:{trunkline.sip_port}"
    authorization = Challenge.parse(header).authorization(username, password, "INVITE", uri)
    final = await carrier.invite(number, cseq=2, headers={"Authorization": authorization})
    return challenge, final, carrier


@UNTRUSTED_LOOPBACK
async def test_untrusted_source_is_challenged_before_anything_is_revealed(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    for number in (NUMBER, UNKNOWN_NUMBER):
        carrier = await CarrierCall.open(trunkline.sip_port)
        try:
            response = await carrier.invite(number)
        finally:
            carrier.close()
        assert response.status == 401
        challenge = Challenge.parse(response.headers.get("WWW-Authenticate") or "")
        assert challenge.realm == "trunkline"
    assert not echo_agent.calls


@UNTRUSTED_LOOPBACK
async def test_digest_authenticated_invite_is_answered(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    challenge, final, carrier = await invite_with_credentials(
        trunkline, NUMBER, "carrier", "correct horse"
    )
    try:
        assert (challenge.status, final.status) == (401, 200)
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()


@UNTRUSTED_LOOPBACK
async def test_unknown_user_and_wrong_password_get_the_same_answer(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    answers = []
    for number, username, password in [
        (NUMBER, "carrier", "wrong"),
        (NUMBER, "nobody", "correct horse"),
        (UNKNOWN_NUMBER, "carrier", "wrong"),
    ]:
        _, final, carrier = await invite_with_credentials(trunkline, number, username, password)
        carrier.close()
        answers.append((final.status, final.reason))
    assert answers == [(403, "Forbidden")] * 3
    assert trunkline.gateway.auth_refused == 6  # three challenges, three refusals
    assert not echo_agent.calls


# 127.0.0.1 is trusted, 127.0.0.2 is not: both send from the start, so the untrusted
# one starts with a full burst of 2 x 5 = 10 requests, as if its limit had just been set.
@pytest.mark.settings(sip_trusted_sources="127.0.0.1/32", sip_unauthenticated_rate=5.0)
async def test_untrusted_sources_are_rate_limited_and_trusted_ones_are_not(
    trunkline: Trunkline,
) -> None:
    gateway = trunkline.gateway
    trusted = await CarrierCall.open(trunkline.sip_port)
    untrusted = await CarrierCall.open(trunkline.sip_port, host="127.0.0.2")
    try:
        for cseq in range(30):
            trusted.sip.sendto(
                trusted.request("OPTIONS", NUMBER, cseq + 1).serialize(), trusted.target
            )
        trusted_answers = [await trusted.response(2.0) for _ in range(30)]
        assert all(r.status == 200 for r in trusted_answers)
        assert gateway.budget.dropped == 0
        for cseq in range(30):
            untrusted.sip.sendto(
                untrusted.request("OPTIONS", NUMBER, cseq + 1).serialize(), untrusted.target
            )
        answered = 0
        try:
            while True:
                await untrusted.response(1.0)
                answered += 1
        except TimeoutError:
            pass
    finally:
        trusted.close()
        untrusted.close()
    assert 10 <= answered <= 12  # the burst, plus what refilled while sending
    assert gateway.budget.dropped == 30 - answered


@UNTRUSTED_LOOPBACK
async def test_a_captured_authorization_replayed_on_a_new_invite_is_challenged_again(
    trunkline: Trunkline, echo_agent: EchoAgent
) -> None:
    await trunkline.number("auto_accept", echo_agent.url)
    carrier = await CarrierCall.open(trunkline.sip_port)
    try:
        challenge = await carrier.invite(NUMBER)
        uri = f"sip:{NUMBER}@127.0.0.1:{trunkline.sip_port}"
        captured = Challenge.parse(challenge.headers.get("WWW-Authenticate") or "").authorization(
            "carrier", "correct horse", "INVITE", uri
        )
        answered = await carrier.invite(NUMBER, cseq=2, headers={"Authorization": captured})
        assert answered.status == 200
        assert (await carrier.bye(NUMBER)).status == 200
    finally:
        carrier.close()
    replayer = await CarrierCall.open(trunkline.sip_port)
    try:
        replayed = await replayer.invite(NUMBER, headers={"Authorization": captured})
        other_number = await replayer.invite(
            UNKNOWN_NUMBER, cseq=2, headers={"Authorization": captured}
        )
    finally:
        replayer.close()
    assert replayed.status == 401
    assert "stale=true" in (replayed.headers.get("WWW-Authenticate") or "")
    assert other_number.status == 403  # the digest uri names another Request-URI
    assert len(echo_agent.calls) == 1
    refusals = trunkline.gateway.digest.refusals
    assert (refusals["replayed"], refusals["wrong_uri"]) == (1, 1)
