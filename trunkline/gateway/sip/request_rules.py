"""Well-formed requests trunkline still cannot serve, and the status each gets, sans I/O.

RFC 3261 §8.2.2: a Request-URI scheme it does not speak is 416 (Unsupported
URI Scheme); a ``Require`` naming an extension it does not implement is 420
(Bad Extension) with the extensions listed in ``Unsupported`` (ACK and CANCEL
are exempt, §8.2.2.3); a ``Max-Forwards`` that reached 0 is 483 (Too Many Hops;
OPTIONS excepted, which may be sent with 0 to ask the next hop itself, §11.1).
A ``Max-Forwards`` that is not a number 0–255 is a malformed request (400).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trunkline.gateway.sip.headers import split_list
from trunkline.gateway.sip.message import SipRequest

URI_SCHEMES = frozenset(("sip", "sips", "tel"))
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()  # no option tag is implemented (no 100rel)


# How each refusal is counted (trunkline_sip_requests_refused_total{reason}); a malformed
# Max-Forwards is counted with the other bad requests.
TOO_MANY_HOPS = "too_many_hops"
UNSUPPORTED_URI_SCHEME = "unsupported_uri_scheme"
BAD_EXTENSION = "bad_extension"
BAD_REQUEST = "bad_request"
REFUSAL_REASONS = (TOO_MANY_HOPS, UNSUPPORTED_URI_SCHEME, BAD_EXTENSION)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The final response a request gets instead of being served, and how it is counted."""

    counted_as: str
    status: int
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # names as keywords: no "-"


def refusal_for(request: SipRequest) -> Refusal | None:
    """Why ``request`` cannot be served (None: it can). ACKs are never answered."""
    if request.method == "ACK":
        return None
    forwards = request.headers.get("Max-Forwards")
    if forwards is not None:
        text = forwards.strip()
        if not text.isdigit() or int(text) > 255:
            return Refusal(BAD_REQUEST, 400, "Bad Request (Max-Forwards is not 0-255)")
        if int(text) == 0 and request.method != "OPTIONS":
            return Refusal(TOO_MANY_HOPS, 483)
    scheme = request.uri.partition(":")[0].strip().lower()
    if scheme not in URI_SCHEMES:
        return Refusal(UNSUPPORTED_URI_SCHEME, 416)
    if request.method != "CANCEL":
        required = [
            option
            for header in request.headers.get_all("Require")
            for option in split_list(header)
            if option.strip()
        ]
        unsupported = [o.strip() for o in required if o.strip().lower() not in SUPPORTED_EXTENSIONS]
        if unsupported:
            return Refusal(BAD_EXTENSION, 420, headers={"Unsupported": ", ".join(unsupported)})
    return None
