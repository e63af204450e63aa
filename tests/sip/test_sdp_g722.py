"""G.722 in offer/answer: payload type 9 at the RTP clock rate 8000, chosen only when enabled."""

from __future__ import annotations

import pytest

from trunkline.gateway.sip.sdp import SdpError, answer_sdp, build_sdp, negotiate, parse_sdp

WIDEBAND_FIRST = (
    b"v=0\r\no=c 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 9 0 8 101\r\n"
    b"a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def test_g722_offered_first_is_chosen_when_enabled() -> None:
    negotiated = negotiate(parse_sdp(WIDEBAND_FIRST), ("PCMU", "PCMA", "G722"))
    assert (negotiated.payload_type, negotiated.codec) == (9, "G722")
    answer = parse_sdp(answer_sdp(negotiated, "198.51.100.1", 5000))
    assert answer.payload_types == [9, 101]
    assert answer.rtpmap[9] == "G722/8000"  # 16 kHz audio, 8000 clock (RFC 3551)


def test_g722_is_passed_over_unless_enabled() -> None:
    negotiated = negotiate(parse_sdp(WIDEBAND_FIRST), ("PCMU", "PCMA"))
    assert negotiated.codec == "PCMU"


def test_an_offer_of_g722_alone_needs_it_enabled() -> None:
    only = WIDEBAND_FIRST.replace(b"9 0 8 101", b"9")
    with pytest.raises(SdpError, match="PCMU or PCMA"):
        negotiate(parse_sdp(only), ("PCMU", "PCMA"))
    assert negotiate(parse_sdp(only), ("G722",)).codec == "G722"


def test_offer_lists_codecs_in_the_configured_order() -> None:
    offer = parse_sdp(build_sdp("198.51.100.1", 5000, [9, 0], event_payload_type=101))
    assert offer.payload_types == [9, 0, 101]
    assert offer.rtpmap[9] == "G722/8000" and offer.rtpmap[0] == "PCMU/8000"
