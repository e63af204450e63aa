"""Well-formed requests trunkline still cannot serve, and the status each gets, sans I/O.

RFC 3261 §8.2.2: a Request-URI scheme it does not speak is 416 (Unsupported
URI Scheme); a ``Require`` naming an extension it does not implement is 420
(Bad Extension) with the extensions listed in ``Unsupported`` (ACK and CANCEL
are exempt, §8.2.2.3); a ``Max-Forwards`` that reached 0 is 483 (Too Many Hops;
OPTIONS excepted, which may be sent with 0 to ask the next hop itself, §11.1).
A ``Max-Forwards`` that is not a number 0–255 is a malformed request (400), and
so is a SIP Request-URI carrying ``?headers``, which only other headers may hold
(§19.1.1). An INVITE body that is not ``application/sdp`` (or is encoded) is 415
(Unsupported Media Type) with ``Accept``/``Accept-Encoding`` (§8.2.3); an INVITE
whose ``Accept`` leaves out ``application/sdp`` is 406 (Not Acceptable): every
answer trunkline gives it would carry SDP (§21.4.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trunkline.gateway.sip.headers import split_list
from trunkline.gateway.sip.message import SipRequest

URI_SCHEMES = frozenset(("sip", "sips", "tel"))
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()  # no option tag is implemented (no 100rel)
SDP = "application/sdp"
ACCEPTING_SDP = frozenset((SDP, "application/*", "*/*"))


# How each refusal is counted (trunkline_sip_requests_refused_total{reason}); a malformed
# Max-Forwards is counted with the other bad requests.
TOO_MANY_HOPS = "too_many_hops"
UNSUPPORTED_URI_SCHEME = "unsupported_uri_scheme"
BAD_EXTENSION = "bad_extension"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
NOT_ACCEPTABLE = "not_acceptable"
BAD_REQUEST = "bad_request"
REFUSAL_REASONS = (
    TOO_MANY_HOPS, UNSUPPORTED_URI_SCHEME, BAD_EXTENSION, UNSUPPORTED_MEDIA_TYPE, NOT_ACCEPTABLE,
)  # fmt: skip


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
    scheme, _, rest = request.uri.partition(":")
    scheme = scheme.strip().lower()
    if scheme not in URI_SCHEMES:
        return Refusal(UNSUPPORTED_URI_SCHEME, 416)
    if scheme != "tel" and "?" in rest.rpartition("@")[2]:  # ?headers after the host
        return Refusal(BAD_REQUEST, 400, "Bad Request (headers in the Request-URI)")
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
    if request.method == "INVITE":
        return _invite_body_refusal(request)
    return None


def _invite_body_refusal(request: SipRequest) -> Refusal | None:
    """415 for a body trunkline cannot read, 406 when its SDP answer would not be accepted."""
    if request.body:
        content_type = (request.headers.get("Content-Type") or SDP).partition(";")[0]
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        if content_type.strip().lower() != SDP or encoding != "identity":
            return Refusal(
                UNSUPPORTED_MEDIA_TYPE, 415, headers={"Accept": SDP, "Accept_Encoding": "identity"}
            )
    accepted = [
        media.partition(";")[0].strip().lower()
        for header in request.headers.get_all("Accept")
        for media in split_list(header)
    ]
    if accepted and not ACCEPTING_SDP.intersection(accepted):
        return Refusal(NOT_ACCEPTABLE, 406, headers={"Accept": SDP})
    return None
