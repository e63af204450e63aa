"""The REGISTER client core: requests, challenges, 423, granted expiry, refresh and back-off."""

from __future__ import annotations

import pytest

from trunkline.gateway.sip.digest import DigestServer, parse_params
from trunkline.gateway.sip.message import SipRequest, SipResponse, parse_message, response_to
from trunkline.gateway.sip.registration import (
    Backoff,
    Credentials,
    Registered,
    Registration,
    RegistrationFailed,
    Send,
    Unregistered,
)

REGISTRAR = "sip:registrar.example:5070"
CONTACT = "sip:alice@192.0.2.10:5060"


def new_registration(**options: object) -> Registration:
    values: dict[str, object] = {
        "user": "alice",
        "registrar_uri": REGISTRAR,
        "contact_uri": CONTACT,
        "via_host": "192.0.2.10",
        "via_port": 5060,
        "credentials": Credentials("alice", "s3cret"),
        "expires": 600,
        "random": lambda: 0.5,
    }
    values.update(options)
    return Registration(**values)  # type: ignore[arg-type]


def wire(request: SipRequest) -> SipRequest:
    """The request as the registrar reads it off the wire."""
    parsed = parse_message(request.serialize())
    assert isinstance(parsed, SipRequest)
    return parsed


def answer(request: SipRequest, status: int, **headers: str) -> SipResponse:
    response = response_to(wire(request), status, to_tag="reg")
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    return response


def test_register_request_names_the_binding() -> None:
    registration = new_registration()
    request = wire(registration.register())
    assert request.method == "REGISTER"
    assert request.uri == REGISTRAR
    assert request.headers.get("To") == "<sip:alice@registrar.example:5070>"
    assert request.headers.get("From", "").startswith("<sip:alice@registrar.example:5070>;tag=")
    assert request.headers.get("Contact") == f"<{CONTACT}>;expires=600"
    assert request.headers.get("Expires") == "600"
    assert request.headers.get("Authorization") is None
    assert request.top_via.params.get("branch", "").startswith("z9hG4bK")


def test_refreshes_keep_the_call_id_and_count_cseq_up() -> None:
    registration = new_registration()
    first = registration.register()
    second = registration.register()
    assert first.call_id == second.call_id
    assert second.cseq[0] == first.cseq[0] + 1
    assert first.top_via.branch != second.top_via.branch


def test_digest_challenge_is_answered_and_verifies() -> None:
    server = DigestServer("example", b"k" * 32)
    registration = new_registration()
    request = registration.register()
    challenge = server.challenge(1000.0, source="192.0.2.10")
    outcome = registration.on_response(answer(request, 401, WWW_Authenticate=challenge), 1.0)
    assert isinstance(outcome, Send)
    retry = wire(outcome.request)
    assert retry.cseq[0] == request.cseq[0] + 1
    authorization = retry.headers.get("Authorization") or ""
    _, params = parse_params(authorization)
    assert params["qop"] == "auth" and params["nc"] == "00000001"
    verdict = server.verify(
        authorization, "REGISTER", {"alice": "s3cret"}, 1000.0, uri=REGISTRAR, source="192.0.2.10"
    )
    assert verdict == "ok"


def test_granted_expiry_comes_from_our_contact() -> None:
    registration = new_registration()
    request = registration.register()
    other = "<sip:alice@198.51.100.7:5060>;expires=3000"
    ours = f"<{CONTACT}>;expires=120"
    response = answer(request, 200, Contact=f"{other}, {ours}", Expires="900")
    outcome = registration.on_response(response, 100.0)
    assert outcome == Registered(120, 100.0 + 120 * 0.65)
    assert registration.state == "registered"
    assert registration.expires_at == 220.0


def test_granted_expiry_falls_back_to_the_expires_header() -> None:
    registration = new_registration()
    outcome = registration.on_response(answer(registration.register(), 200, Expires="300"), 0.0)
    assert isinstance(outcome, Registered) and outcome.expires == 300


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_refresh_falls_between_half_and_four_fifths_of_the_grant(draw: float) -> None:
    registration = new_registration(random=lambda: draw)
    request = registration.register()
    outcome = registration.on_response(answer(request, 200, Contact=f"<{CONTACT}>;expires=60"), 0)
    assert isinstance(outcome, Registered)
    assert 30.0 <= outcome.refresh_at <= 48.0


def test_refresh_reuses_the_nonce_with_a_higher_count() -> None:
    registration = new_registration()
    server = DigestServer("example", b"k" * 32)
    challenge = server.challenge(1000.0, source="192.0.2.10")
    outcome = registration.on_response(
        answer(registration.register(), 401, WWW_Authenticate=challenge), 0.0
    )
    assert isinstance(outcome, Send)
    registration.on_response(answer(outcome.request, 200, Expires="600"), 0.0)
    refresh = wire(registration.register())
    _, params = parse_params(refresh.headers.get("Authorization") or "")
    assert params["nc"] == "00000002"
    verdict = server.verify(
        refresh.headers.get("Authorization") or "", "REGISTER", {"alice": "s3cret"}, 1000.0,
        uri=REGISTRAR, source="192.0.2.10",
    )  # fmt: skip
    assert verdict == "ok"


def test_a_new_challenge_on_refresh_is_answered_not_failed() -> None:
    registration = new_registration()
    server = DigestServer("example", b"k" * 32)
    first = registration.on_response(
        answer(registration.register(), 401, WWW_Authenticate=server.challenge(0, source="h")), 0
    )
    assert isinstance(first, Send)
    registration.on_response(answer(first.request, 200, Expires="600"), 0.0)
    # The registrar forgot the nonce: the pre-emptive answer is challenged again.
    again = registration.on_response(
        answer(registration.register(), 401, WWW_Authenticate=server.challenge(0, source="h")), 0
    )
    assert isinstance(again, Send)


def test_wrong_password_fails_with_backoff() -> None:
    registration = new_registration(backoff=Backoff(30.0, 1800.0))
    server = DigestServer("example", b"k" * 32)
    first = registration.on_response(
        answer(registration.register(), 401, WWW_Authenticate=server.challenge(0, source="h")), 0
    )
    assert isinstance(first, Send)
    refused = registration.on_response(
        answer(first.request, 401, WWW_Authenticate=server.challenge(0, source="h")), 10.0
    )
    assert isinstance(refused, RegistrationFailed)
    assert refused.reason == "registrar rejected the credentials"
    assert refused.retry_at == pytest.approx(10.0 + 30 * 0.75)
    assert registration.state == "failed"
    assert registration.last_error == "registrar rejected the credentials"


def test_stale_nonce_is_answered_again() -> None:
    registration = new_registration()
    server = DigestServer("example", b"k" * 32)
    first = registration.on_response(
        answer(registration.register(), 401, WWW_Authenticate=server.challenge(0, source="h")), 0
    )
    assert isinstance(first, Send)
    stale = server.challenge(0, source="h", stale=True)
    assert isinstance(
        registration.on_response(answer(first.request, 401, WWW_Authenticate=stale), 0), Send
    )


def test_proxy_challenge_is_answered_with_proxy_authorization() -> None:
    registration = new_registration()
    challenge = 'Digest realm="p", nonce="abc", algorithm=MD5'
    outcome = registration.on_response(
        answer(registration.register(), 407, Proxy_Authenticate=challenge), 0
    )
    assert isinstance(outcome, Send)
    assert outcome.request.headers.get("Proxy-Authorization", "").startswith("Digest ")


def test_challenge_without_credentials_fails() -> None:
    registration = new_registration(credentials=None)
    outcome = registration.on_response(
        answer(registration.register(), 401, WWW_Authenticate='Digest realm="r", nonce="n"'), 0
    )
    assert isinstance(outcome, RegistrationFailed)
    assert outcome.reason == "registrar requires authentication"


def test_interval_too_brief_raises_the_expiry_to_min_expires() -> None:
    registration = new_registration(expires=30)
    outcome = registration.on_response(answer(registration.register(), 423, Min_Expires="90"), 0.0)
    assert isinstance(outcome, Send)
    assert outcome.request.headers.get("Expires") == "90"
    assert registration.expires == 90
    useless = registration.on_response(answer(outcome.request, 423, Min_Expires="60"), 0.0)
    assert isinstance(useless, RegistrationFailed)


def test_backoff_doubles_to_its_bound_with_jitter() -> None:
    backoff = Backoff(30.0, 1800.0)
    assert [backoff.delay(n, 1.0) for n in (1, 2, 3, 7, 8, 20)] == [
        30.0, 60.0, 120.0, 1800.0, 1800.0, 1800.0,
    ]  # fmt: skip
    assert backoff.delay(1, 0.0) == 15.0


def test_consecutive_failures_back_off_further_and_success_resets() -> None:
    draws = iter([1.0] * 10)
    registration = new_registration(random=lambda: next(draws))
    retry_ats = []
    for _ in range(3):
        outcome = registration.on_timeout(0.0)
        assert isinstance(outcome, RegistrationFailed)
        retry_ats.append(outcome.retry_at)
    assert retry_ats == [30.0, 60.0, 120.0]
    registration.on_response(answer(registration.register(), 200, Expires="60"), 0.0)
    assert registration.failures == 0 and registration.last_error is None


def test_server_error_fails_with_the_status() -> None:
    registration = new_registration()
    outcome = registration.on_response(answer(registration.register(), 503), 5.0)
    assert isinstance(outcome, RegistrationFailed)
    assert outcome.status == 503
    assert "503" in outcome.reason


def test_unregister_asks_for_zero_and_ends_the_binding() -> None:
    registration = new_registration()
    registration.on_response(answer(registration.register(), 200, Expires="600"), 0.0)
    request = wire(registration.unregister())
    assert request.headers.get("Expires") == "0"
    assert request.headers.get("Contact") == f"<{CONTACT}>;expires=0"
    assert registration.on_response(answer(request, 200), 1.0) == Unregistered()
    assert registration.state == "unregistered"
    assert registration.expires_at is None


def test_binding_missing_from_the_2xx_is_a_failure() -> None:
    registration = new_registration()
    response = answer(registration.register(), 200, Contact=f"<{CONTACT}>;expires=0")
    assert isinstance(registration.on_response(response, 0.0), RegistrationFailed)


def test_provisional_responses_change_nothing() -> None:
    registration = new_registration()
    assert registration.on_response(answer(registration.register(), 100), 0.0) is None
    assert registration.state == "pending"
