"""SDP offer/answer and digest authentication."""

from __future__ import annotations

import hashlib

import pytest

from trunkline.gateway.sip.digest import Challenge, DigestServer, digest_response, parse_params
from trunkline.gateway.sip.sdp import SdpError, answer_sdp, negotiate, parse_sdp

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 18 8 0 96\r\na=rtpmap:18 G729/8000\r\n"
    b"a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def test_answer_picks_the_first_common_codec_and_echoes_dtmf() -> None:
    offer = parse_sdp(OFFER)
    negotiated = negotiate(offer)
    assert (negotiated.codec, negotiated.payload_type, negotiated.event_payload_type) == (
        "PCMA",
        8,
        96,
    )
    assert (negotiated.remote_address, negotiated.remote_port) == ("192.0.2.10", 40000)
    answer = parse_sdp(answer_sdp(negotiated, "198.51.100.1", 12000))
    assert answer.payload_types == [8, 96] and answer.port == 12000
    assert answer.encoding(96) == "TELEPHONE-EVENT" and answer.ptime == 20


def test_hold_offers_are_answered_recvonly() -> None:
    held = parse_sdp(OFFER.replace(b"a=sendrecv", b"a=sendonly"))
    assert held.on_hold and negotiate(held).direction == "recvonly"
    zeroed = parse_sdp(OFFER.replace(b"c=IN IP4 192.0.2.10", b"c=IN IP4 0.0.0.0"))
    assert zeroed.on_hold


def test_a_single_declared_ssrc_is_negotiated_several_are_not() -> None:
    assert negotiate(parse_sdp(OFFER)).ssrc is None
    one = OFFER + b"a=ssrc:3735928559 cname:carrier\r\na=ssrc:3735928559 msid:a b\r\n"
    assert parse_sdp(one).ssrc == [3735928559] and negotiate(parse_sdp(one)).ssrc == 3735928559
    two = one + b"a=ssrc:17 cname:carrier\r\n"  # (e.g. a retransmission stream): ambiguous
    assert negotiate(parse_sdp(two)).ssrc is None
    bad = OFFER + b"a=ssrc:4294967296 cname:x\r\na=ssrc:abc cname:y\r\n"
    assert parse_sdp(bad).ssrc == []


@pytest.mark.parametrize(
    "body",
    [
        OFFER.replace(b"18 8 0 96", b"18 96"),  # no G.711
        b"v=0\r\nm=video 1 RTP/AVP 31\r\n",
        b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n",  # no connection address
        b"\xff\xfe",
    ],
)
def test_unusable_offers_are_sdp_errors(body: bytes) -> None:
    with pytest.raises(SdpError):
        negotiate(parse_sdp(body))


def test_rfc2617_example_response() -> None:
    # The worked example of RFC 2617 §3.5.
    assert (
        digest_response(
            algorithm="MD5",
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_client_answers_verify_on_the_server(algorithm: str) -> None:
    server = DigestServer("trunk.example", b"s" * 32, algorithm)
    now = 1_800_000_000.0
    uri = "sip:+1555@trunk.example"
    challenge = Challenge.parse(server.challenge(now, source="192.0.2.7"))
    header = challenge.authorization("alice", "pw", "INVITE", uri)
    passwords = {"alice": "pw"}

    def verify(header: str, method: str, passwords: dict[str, str], at: float) -> str:
        return server.verify(header, method, passwords, at, uri=uri, source="192.0.2.7")

    assert verify(header, "BYE", passwords, now + 1) == "denied"
    assert verify(header, "INVITE", {"alice": "other"}, now + 1) == "denied"
    assert verify(header, "INVITE", {"bob": "pw"}, now + 1) == "denied"
    assert verify(header, "INVITE", passwords, now + 31) == "stale"
    other = "1" if challenge.nonce.endswith("0") else "0"
    forged = header.replace(challenge.nonce, challenge.nonce[:-1] + other)
    assert verify(forged, "INVITE", passwords, now + 1) == "denied"
    assert verify(header, "INVITE", passwords, now + 1) == "ok"
    _, params = parse_params(header)
    ha1 = hashlib.new(
        "md5" if algorithm == "MD5" else "sha256", b"alice:trunk.example:pw"
    ).hexdigest()
    assert params["algorithm"] == algorithm and len(ha1) in (32, 64)


def test_challenges_without_qop_and_bad_ones() -> None:
    legacy = Challenge.parse('Digest realm="r", nonce="n"')
    header = legacy.authorization("u", "p", "INVITE", "sip:x")
    expected = digest_response(
        algorithm="MD5", username="u", realm="r", password="p", method="INVITE",
        uri="sip:x", nonce="n", qop=None, nc="", cnonce="",
    )  # fmt: skip
    assert f'response="{expected}"' in header
    for bad in (
        'Basic realm="r"',
        'Digest realm="r"',
        'Digest realm="r", nonce="n", algorithm=SHA1',
    ):
        with pytest.raises(ValueError):
            Challenge.parse(bad)


@pytest.mark.parametrize(
    ("connection", "address", "address_type"),
    [
        ("c=IN IP4 media.example.com", "media.example.com", "IP4"),
        ("c=IN IP4 localhost.", "localhost.", "IP4"),
        ("c=IN IP6 2001:db8::5", "2001:db8::5", "IP6"),
        ("c=IN IP6 media6.example.com", "media6.example.com", "IP6"),
        ("c=IN IP4 224.2.1.1/127", "224.2.1.1", "IP4"),
    ],
)
def test_connection_host_names_and_literals_are_kept_with_their_type(
    connection: str, address: str, address_type: str
) -> None:
    offer = parse_sdp(OFFER.replace(b"c=IN IP4 192.0.2.10", connection.encode()))
    assert (offer.address, offer.address_type) == (address, address_type)


@pytest.mark.parametrize(
    "connection",
    [
        "c=IN IP4 999.1.1.1",
        "c=IN IP4 1.2.3",
        "c=IN IP4 bad..host",
        "c=IN IP4 -leading.example.com",
        "c=IN IP4 under_score.example.com",
        "c=IN IP4 2001:db8::5",  # an IPv6 address on an IP4 line
        "c=IN IP6 192.0.2.10",
        "c=IN IPX 192.0.2.10",
        "c=ATM NSAP 47.0005.80.ffe100.0000.f21a.26d6.0020ea30b6c0.00",
        "c=IN IP4 " + "a" * 64 + ".example.com",  # a label longer than 63
    ],
)
def test_unusable_connection_addresses_are_sdp_errors(connection: str) -> None:
    with pytest.raises(SdpError):
        parse_sdp(OFFER.replace(b"c=IN IP4 192.0.2.10", connection.encode()))
