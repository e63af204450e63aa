"""The digest server refuses captured answers: other hosts, other URIs, old or reused nonces."""

from __future__ import annotations

from trunkline.gateway.sip.digest import Challenge, DigestServer, parse_params

NOW = 1_800_000_000.0
CARRIER = "192.0.2.7"
URI = "sip:+15550100001@trunk.example"
PASSWORDS = {"carrier": "correct horse"}


def answer(server: DigestServer, *, source: str = CARRIER, uri: str = URI, nc: int = 1) -> str:
    challenge = Challenge.parse(server.challenge(NOW, source=source))
    return challenge.authorization("carrier", "correct horse", "INVITE", uri, nc=nc)


def verify(server: DigestServer, header: str, *, at: float = NOW + 1, **where: str) -> str:
    place = {"uri": URI, "source": CARRIER} | where
    return server.verify(header, "INVITE", PASSWORDS, at, **place)


def test_a_nonce_is_only_good_for_the_host_it_was_given_to() -> None:
    server = DigestServer("trunkline", b"k" * 32)
    header = answer(server)
    assert verify(server, header, source="198.51.100.9") == "denied"
    assert server.refusals["unknown_nonce"] == 1
    assert verify(server, header) == "ok"


def test_the_digest_uri_must_be_the_request_uri() -> None:
    server = DigestServer("trunkline", b"k" * 32)
    header = answer(server, uri="sip:+15550100002@trunk.example")
    assert verify(server, header) == "denied"
    assert server.refusals["wrong_uri"] == 1


def test_a_replayed_answer_is_refused_and_a_higher_count_accepted() -> None:
    server = DigestServer("trunkline", b"k" * 32)
    challenge = Challenge.parse(server.challenge(NOW, source=CARRIER))
    header = challenge.authorization("carrier", "correct horse", "INVITE", URI, nc=1)
    assert verify(server, header) == "ok"
    assert verify(server, header) == "stale"  # asked again, with a fresh nonce
    assert server.refusals["replayed"] == 1
    again = Challenge("trunkline", challenge.nonce, "MD5", "auth", None)
    second = again.authorization("carrier", "correct horse", "INVITE", URI, nc=2)
    assert verify(server, second) == "ok"
    first = again.authorization("carrier", "correct horse", "INVITE", URI, nc=1)
    assert verify(server, first) == "stale"
    assert server.refusals["replayed"] == 2


def test_without_qop_a_nonce_is_good_for_one_request() -> None:
    server = DigestServer("trunkline", b"k" * 32)
    nonce = Challenge.parse(server.challenge(NOW, source=CARRIER)).nonce
    header = Challenge("trunkline", nonce, "MD5", None, None).authorization(
        "carrier", "correct horse", "INVITE", URI
    )
    assert "nc=" not in header
    assert verify(server, header) == "ok"
    assert verify(server, header) == "stale"


def test_an_expired_nonce_with_the_right_password_is_stale_and_a_wrong_one_denied() -> None:
    server = DigestServer("trunkline", b"k" * 32, nonce_lifetime=30)
    header = answer(server)
    assert verify(server, header, at=NOW + 31) == "stale"
    assert server.refusals["stale_nonce"] == 1
    wrong = Challenge.parse(server.challenge(NOW, source=CARRIER)).authorization(
        "carrier", "wrong", "INVITE", URI
    )
    assert verify(server, wrong, at=NOW + 31) == "denied"
    assert server.refusals["bad_credentials"] == 1
    longer = DigestServer("trunkline", b"k" * 32, nonce_lifetime=60)
    assert verify(longer, answer(longer), at=NOW + 31) == "ok"


def test_the_nonce_table_is_bounded_and_forgetting_never_lets_a_replay_in() -> None:
    server = DigestServer("trunkline", b"k" * 32, max_tracked_nonces=3)
    headers = []
    for i in range(5):
        challenge = Challenge.parse(server.challenge(NOW + i, source=CARRIER))
        header = challenge.authorization("carrier", "correct horse", "INVITE", URI)
        assert verify(server, header, at=NOW + 5) == "ok"
        headers.append(header)
    assert len(server.counts) == 3
    assert server.counts.evicted == 2
    for header in headers:  # forgotten nonces are stale, remembered ones replays
        assert verify(server, header, at=NOW + 5) == "stale"
    assert server.refusals["stale_nonce"] == 2
    assert server.refusals["replayed"] == 3


def test_expired_nonces_leave_the_table_before_anything_is_evicted() -> None:
    server = DigestServer("trunkline", b"k" * 32, nonce_lifetime=30, max_tracked_nonces=2)
    for i in range(6):
        issued = NOW + i * 40  # each nonce has expired when the next one is used
        challenge = Challenge.parse(server.challenge(issued, source=CARRIER))
        header = challenge.authorization("carrier", "correct horse", "INVITE", URI)
        assert verify(server, header, at=issued + 1) == "ok"
    assert len(server.counts) == 1
    assert server.counts.evicted == 0


def test_challenges_in_the_same_second_to_one_host_have_their_own_nonces() -> None:
    """Two calls from one carrier within a second: the second must not look like a replay."""
    server = DigestServer("trunkline", b"k" * 32)
    first, second = answer(server), answer(server)
    assert parse_params(first)[1]["nonce"] != parse_params(second)[1]["nonce"]
    assert verify(server, first) == "ok"
    assert verify(server, second) == "ok"
    assert server.refusals["replayed"] == 0
