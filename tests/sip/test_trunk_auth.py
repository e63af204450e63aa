"""Trunk authentication, driven directly: challenge, stale challenge, 403, and what is counted."""

from __future__ import annotations

import time

from trunkline.gateway.sip.digest import Challenge, DigestServer
from trunkline.gateway.sip.message import SipRequest
from trunkline.gateway.sip.trunk_auth import Passwords, TrunkAuth

CARRIER = "192.0.2.7"
URI = "sip:+15550100001@trunk.example"
PASSWORDS = {"carrier": "correct horse"}


def invite(authorization: str | None = None) -> SipRequest:
    request = SipRequest(method="INVITE", uri=URI)
    if authorization is not None:
        request.headers.add("Authorization", authorization)
    return request


def answered(auth: TrunkAuth, password: str = "correct horse", user: str = "carrier") -> SipRequest:
    header = auth.challenge(CARRIER).headers["WWW_Authenticate"]
    return invite(Challenge.parse(header).authorization(user, password, "INVITE", URI))


def trunk() -> TrunkAuth:
    return TrunkAuth(DigestServer("trunkline", b"k" * 32, nonce_lifetime=30))


def test_a_request_without_an_answer_is_challenged_and_its_passwords_never_asked() -> None:
    auth = trunk()
    asked: list[bool] = []

    def passwords() -> Passwords:
        asked.append(True)
        return PASSWORDS

    refusal = auth.check_invite(invite(), passwords, CARRIER)
    assert refusal is not None and refusal.status == 401
    challenge = refusal.headers["WWW_Authenticate"]
    assert Challenge.parse(challenge).realm == "trunkline" and "stale" not in challenge
    assert not asked and auth.refused == 1


def test_the_right_password_passes_and_nothing_is_counted() -> None:
    auth = trunk()
    assert auth.check_invite(answered(auth), lambda: PASSWORDS, CARRIER) is None
    assert auth.refused == 0


def test_a_wrong_password_and_an_unknown_user_get_the_same_403() -> None:
    auth = trunk()
    wrong = auth.check_invite(answered(auth, password="wrong"), lambda: PASSWORDS, CARRIER)
    stranger = auth.check_invite(answered(auth, user="mallory"), lambda: PASSWORDS, CARRIER)
    assert wrong == stranger and wrong is not None
    assert (wrong.status, wrong.headers) == (403, {})
    assert auth.refused == 2


def test_a_request_from_another_host_than_the_challenged_one_is_denied() -> None:
    auth = trunk()
    refusal = auth.check(answered(auth), lambda: PASSWORDS, "198.51.100.9")
    assert refusal is not None and refusal.status == 403
    assert auth.refused == 0  # only INVITEs are counted here


def test_an_expired_nonce_gets_a_fresh_challenge_marked_stale() -> None:
    auth = trunk()
    request = answered(auth)
    refusal = auth.check(request, lambda: PASSWORDS, CARRIER, now=time.time() + 60)
    assert refusal is not None and refusal.status == 401
    assert refusal.headers["WWW_Authenticate"].endswith("stale=true")
