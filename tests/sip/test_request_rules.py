"""Well-formed requests that cannot be served get the status RFC 3261 §8.2.2 names."""

from __future__ import annotations

import pytest

from trunkline.gateway.sip.message import SipRequest
from trunkline.gateway.sip.request_rules import (
    BAD_EXTENSION,
    BAD_REQUEST,
    TOO_MANY_HOPS,
    UNSUPPORTED_URI_SCHEME,
    Refusal,
    refusal_for,
)


def request(
    method: str = "INVITE", uri: str = "sip:+15550100001@192.0.2.1", **headers: str
) -> SipRequest:
    message = SipRequest(method=method, uri=uri)
    message.headers.add("Max-Forwards", headers.pop("max_forwards", "70"))
    for name, value in headers.items():
        message.headers.add(name.replace("_", "-"), value)
    return message


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
    ],
)
def test_refusals(message: SipRequest, expected: Refusal | None) -> None:
    assert refusal_for(message) == expected
