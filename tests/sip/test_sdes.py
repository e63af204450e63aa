"""SDES (RFC 4568) in offer/answer: what each SRTP policy accepts, offers and refuses."""

from __future__ import annotations

import base64

import pytest

from trunkline.gateway.sip.sdes import (
    KEY_SALT_BYTES,
    Crypto,
    accept_answer,
    answer_offer,
    offer_cryptos,
    offer_profile,
)
from trunkline.gateway.sip.sdp import SdpError, build_sdp, parse_sdp

KEY = bytes(range(KEY_SALT_BYTES))
INLINE = base64.b64encode(KEY).decode()


def offer(profile: str, *crypto: str) -> bytes:
    lines = "".join(f"a=crypto:{c}\r\n" for c in crypto)
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio 4000 {profile} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{lines}"
    ).encode()


def test_crypto_lines_parse_and_print_back() -> None:
    crypto = Crypto.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}")
    assert crypto == Crypto(1, "AES_CM_128_HMAC_SHA1_80", KEY)
    assert crypto.value == f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"
    assert INLINE not in repr(crypto)  # keys stay out of logs


@pytest.mark.parametrize(
    "value",
    [
        f"1 AES_256_CM_HMAC_SHA1_80 inline:{INLINE}",  # suite not supported
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^20|1:4",  # lifetime and MKI
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE} KDR=1",  # session parameters
        "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",  # too short a key
        "1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64",
        "x AES_CM_128_HMAC_SHA1_80 inline:" + INLINE,
    ],
)
def test_unusable_crypto_lines_are_skipped(value: str) -> None:
    assert Crypto.parse(value) is None


def test_savp_offer_over_tls_gets_our_own_key_for_the_first_supported_suite() -> None:
    media = parse_sdp(
        offer(
            "RTP/SAVP",
            f"1 AEAD_AES_128_GCM inline:{INLINE}",
            f"2 AES_CM_128_HMAC_SHA1_32 inline:{INLINE}",
            f"3 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}",
        )
    )
    assert media.profile == "RTP/SAVP" and len(media.crypto) == 3
    keys = answer_offer(media, "optional", over_tls=True)
    assert keys is not None
    assert (keys.suite, keys.tag, keys.remote_key) == ("AES_CM_128_HMAC_SHA1_80", 3, KEY)
    assert len(keys.local_key) == KEY_SALT_BYTES and keys.local_key != KEY
    answer = parse_sdp(
        build_sdp("127.0.0.1", 5000, [0], event_payload_type=None, profile="RTP/SAVP",
                  crypto=[keys.local_crypto.value])
    )  # fmt: skip
    assert answer.profile == "RTP/SAVP"
    assert Crypto.parse(answer.crypto[0]) == keys.local_crypto


def test_srtp_is_never_negotiated_without_tls() -> None:
    savp = parse_sdp(offer("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"))
    with pytest.raises(SdpError, match="TLS"):
        answer_offer(savp, "mandatory", over_tls=False)
    best_effort = parse_sdp(offer("RTP/AVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"))
    assert answer_offer(best_effort, "optional", over_tls=False) is None
    assert offer_cryptos("mandatory", over_tls=False) == []


def test_policy_off_refuses_savp_and_ignores_best_effort() -> None:
    savp = parse_sdp(offer("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"))
    with pytest.raises(SdpError, match="off"):
        answer_offer(savp, "off", over_tls=True)
    best_effort = parse_sdp(offer("RTP/AVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"))
    assert answer_offer(best_effort, "off", over_tls=True) is None


def test_mandatory_refuses_plain_rtp_and_optional_accepts_it() -> None:
    plain = parse_sdp(offer("RTP/AVP"))
    with pytest.raises(SdpError, match="required"):
        answer_offer(plain, "mandatory", over_tls=True)
    assert answer_offer(plain, "optional", over_tls=True) is None
    unusable = parse_sdp(offer("RTP/SAVP", f"1 F8_128_HMAC_SHA1_80 inline:{INLINE}"))
    with pytest.raises(SdpError, match="suite"):
        answer_offer(unusable, "optional", over_tls=True)


def test_our_offer_and_the_answer_that_picks_one_of_its_keys() -> None:
    cryptos = offer_cryptos("mandatory", over_tls=True)
    assert [c.suite for c in cryptos] == ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"]
    assert len({c.key for c in cryptos}) == 2
    assert offer_profile("mandatory", cryptos) == "RTP/SAVP"
    assert offer_profile("optional", cryptos) == "RTP/AVP"  # best-effort SRTP
    answer = parse_sdp(offer("RTP/SAVP", f"2 AES_CM_128_HMAC_SHA1_32 inline:{INLINE}"))
    keys = accept_answer(cryptos, answer, "mandatory")
    assert keys is not None
    assert (keys.suite, keys.local_key, keys.remote_key) == (
        "AES_CM_128_HMAC_SHA1_32",
        cryptos[1].key,
        KEY,
    )


def test_answers_that_cannot_be_used() -> None:
    cryptos = offer_cryptos("optional", over_tls=True)
    assert accept_answer(cryptos, parse_sdp(offer("RTP/AVP")), "optional") is None
    with pytest.raises(SdpError):
        accept_answer(cryptos, parse_sdp(offer("RTP/AVP")), "mandatory")
    wrong_tag = parse_sdp(offer("RTP/SAVP", f"7 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"))
    with pytest.raises(SdpError):
        accept_answer(cryptos, wrong_tag, "optional")
    with pytest.raises(SdpError):
        accept_answer([], parse_sdp(offer("RTP/SAVP")), "optional")
