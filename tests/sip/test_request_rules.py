"""Well-formed requests that cannot be served get the status RFC 3261 §8.2.2 names."""

from __future__ import annotations

import pytest

from trunkline.gateway.sip.message import SipRequest
from trunkline.gateway.sip.request_rules import (
    BAD_EXTENSION,
    BAD_REQUEST,
    NOT_ACCEPTABLE,
    TOO_MANY_HOPS,
    UNSUPPORTED_MEDIA_TYPE,
    UNSUPPORTED_URI_SCHEME,
    Refusal,
    refusal_for,
)


def request(
    method: str = "INVITE",
    uri: str = "sip:+15550100001@192.0.2.1",
    body: bytes = b"",
    **headers: str,
) -> SipRequest:
    message = SipRequest(method=method, uri=uri, body=body)
    message.headers.add("Max-Forwards", headers.pop("max_forwards", "70"))
    for name, value in headers.items():
        message.headers.add(name.replace("_", "-"), value)
    return message


SDP = b"v=0\r\n"
ACCEPTS = {"Accept": "application/sdp", "Accept_Encoding": "identity"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (request(), None),
        (request(uri="tel:+15550100001"), None),
        (request(uri="SIPS:+15550100001@192.0.2.1"), None),
        (request(max_forwards="0"), Refusal(TOO_MANY_HOPS, 483)),
        (request("BYE", max_forwards="0"), Refusal(TOO_MANY_HOPS, 483)),
        (request("OPTIONS", max_forwards="0"), None),  # asks the next hop itself (§11.1)
        (request("ACK", max_forwards="0"), None),  # an ACK is never answered
        (
            request(max_forwards="-1"),
            Refusal(BAD_REQUEST, 400, "Bad Request (Max-Forwards is not 0-255)"),
        ),
        (
            request(max_forwards="256"),
            Refusal(BAD_REQUEST, 400, "Bad Request (Max-Forwards is not 0-255)"),
        ),
        (
            request(max_forwards="seventy"),
            Refusal(BAD_REQUEST, 400, "Bad Request (Max-Forwards is not 0-255)"),
        ),
        (request(uri="http://example.com/"), Refusal(UNSUPPORTED_URI_SCHEME, 416)),
        (request(uri="urn:service:sos"), Refusal(UNSUPPORTED_URI_SCHEME, 416)),
        (request(Require="100rel"), Refusal(BAD_EXTENSION, 420, headers={"Unsupported": "100rel"})),
        (
            request(Require="timer, nosuchextension"),
            Refusal(BAD_EXTENSION, 420, headers={"Unsupported": "timer, nosuchextension"}),
        ),
        (request("CANCEL", Require="100rel"), None),  # CANCEL is exempt (§8.2.2.3)
        (request("ACK", Require="100rel"), None),
        (request(Supported="100rel, timer"), None),  # what the caller supports asks nothing
        (
            request(uri="sip:+15550100001@192.0.2.1?Route=%3Csip:example.com%3E"),
            Refusal(BAD_REQUEST, 400, "Bad Request (headers in the Request-URI)"),
        ),
        (request(uri="sip:odd?user@192.0.2.1"), None),  # '?' may stand in the user part
        (request(body=SDP, Content_Type="application/sdp"), None),
        (request(body=SDP, Content_Type="Application/SDP; charset=utf-8"), None),
        (request(body=SDP), None),  # no Content-Type: read as SDP
        (request(Content_Type="application/unknownformat"), None),  # no body: nothing to read
        (
            request(body=SDP, Content_Type="application/unknownformat"),
            Refusal(UNSUPPORTED_MEDIA_TYPE, 415, headers=ACCEPTS),
        ),
        (
            request(body=SDP, Content_Type="application/sdp", Content_Encoding="gzip"),
            Refusal(UNSUPPORTED_MEDIA_TYPE, 415, headers=ACCEPTS),
        ),
        (request("BYE", body=b"x", Content_Type="text/plain"), None),  # only an offer is read
        (request(Accept="application/sdp, text/html"), None),
        (request(Accept="*/*"), None),
        (
            request(Accept="text/nobodyKnowsThis"),
            Refusal(NOT_ACCEPTABLE, 406, headers={"Accept": "application/sdp"}),
        ),
        (request("OPTIONS", Accept="text/nobodyKnowsThis"), None),
    ],
)
def test_refusals(message: SipRequest, expected: Refusal | None) -> None:
    assert refusal_for(message) == expected
