"""SIP messages (RFC 3261 §7, §20, §25), sans I/O: parse bytes into messages and back.

This module is the public face of the SIP parser: besides the messages it
exports the header values (``Address``, ``SipUri``, ``Via``) and the parse
error its callers handle. Header names and the header multi-map live in
``headers``, the structured header values in ``header_values``.

Folded continuation lines are joined and the values of multi-value headers
are split into one entry each. Over UDP the body is exactly
``Content-Length`` bytes: a shorter datagram is an error, extra bytes are
dropped (RFC 3261 §18.3). ``check_request`` validates the mandatory headers
of a request; ``response_to`` builds a response from one.

What cannot be read as a message at all raises ``SipParseError`` (dropped by
the endpoint). A request whose method and headers could be read but which
breaks the grammar elsewhere — a Request-Line with extra spaces or a
``<...>`` Request-URI, a SIP version other than 2.0, a bad header line, a
``Content-Length`` that is negative, conflicting or longer than the datagram —
raises ``MalformedRequest``, which carries the request so it can be answered
(400, or 505 for the version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trunkline.gateway.sip.header_values import Address, SipUri, Via, split_host_port
from trunkline.gateway.sip.headers import LIST_HEADERS, Headers, canonical_name, split_list
from trunkline.gateway.sip.parse_error import SipParseError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "REASONS",
    "Address",
    "Headers",
    "MalformedRequest",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "Via",
    "check_request",
    "parse_message",
    "response_to",
    "split_host_port",
]

MAX_MESSAGE_BYTES = 65_535
MAX_HEADERS = 128
SIP_VERSION = "SIP/2.0"
MANDATORY_REQUEST_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
# Headers a request may carry once only (RFC 3261 §7.3.1: only list headers repeat).
SINGLE_VALUE_HEADERS = (
    "Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Type", "Expires", "Date",
)  # fmt: skip
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_VERSION = re.compile(r"^SIP/[0-9]+\.[0-9]+$", re.I)
# absoluteURI's scheme, then anything but whitespace, quotes and angle brackets (§25.1).
_REQUEST_URI = re.compile(r'^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>"]+$')
REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 183: "Session Progress",
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
    408: "Request Timeout", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    406: "Not Acceptable", 416: "Unsupported URI Scheme", 420: "Bad Extension", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops", 486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    603: "Decline",
}  # fmt: skip


class MalformedRequest(SipParseError):
    """A request read far enough to be answered (its method and headers) that breaks the
    grammar: ``status`` is its answer (400, or 505 for an unsupported SIP version)."""

    def __init__(self, reason: str, request: SipRequest, status: int = 400) -> None:
        super().__init__(reason)
        self.request = request
        self.status = status


@dataclass(slots=True)
class SipMessage:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        raw = self.headers.get("CSeq") or ""
        number, _, method = raw.strip().partition(" ")
        try:
            return int(number), method.strip().upper()
        except ValueError:
            raise SipParseError(f"bad CSeq {raw!r}") from None

    @property
    def top_via(self) -> Via:
        raw = self.headers.get("Via")
        if raw is None:
            raise SipParseError("no Via header")
        return Via.parse(raw)

    def _serialize(self, start_line: str) -> bytes:
        headers = self.headers.copy()
        headers.set("Content-Length", str(len(self.body)))
        lines = [start_line]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(slots=True)
class SipRequest(SipMessage):
    method: str = "OPTIONS"
    uri: str = ""

    def serialize(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {SIP_VERSION}")


@dataclass(slots=True)
class SipResponse(SipMessage):
    status: int = 200
    reason: str = "OK"

    def serialize(self) -> bytes:
        return self._serialize(f"{SIP_VERSION} {self.status} {self.reason}")


def _header_lines(text: str) -> list[str]:
    """Unfold continuation lines (RFC 3261 §7.3.1)."""
    lines: list[str] = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        elif line:
            lines.append(line)
    return lines


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one SIP message from a datagram.

    SipParseError when it is not one; MalformedRequest (a SipParseError) when it
    is a request that can be answered but breaks the grammar.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large")
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        head, separator, rest = data.partition(b"\n\n")
        if not separator:
            raise SipParseError("no blank line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = _header_lines(text.lstrip("\r\n"))
    if not lines:
        raise SipParseError("empty message")
    if len(lines) > MAX_HEADERS + 1:
        raise SipParseError("too many header lines")
    message, defect = _start_line(lines[0])
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            defect = defect or (f"bad header line {line[:40]!r}", 400)
            continue
        canonical = canonical_name(name)
        value = value.strip()
        if canonical.lower() in LIST_HEADERS:
            for part in split_list(value):
                message.headers.add(canonical, part)
        else:
            message.headers.add(canonical, value)
    body, body_defect = _body(message.headers.get_all("Content-Length"), rest)
    message.body = body
    defect = defect or body_defect
    if defect is not None:
        reason, status = defect
        if isinstance(message, SipRequest):
            raise MalformedRequest(reason, message, status)
        raise SipParseError(reason)
    return message


Defect = tuple[str, int]  # why a request is malformed, and the status that answers it


def _body(lengths: list[str], rest: bytes) -> tuple[bytes, Defect | None]:
    """The body ``Content-Length`` delimits within the datagram (RFC 3261 §18.3)."""
    if not lengths:
        return rest, None  # UDP: the datagram ends the message
    values = {text.strip() for text in lengths}
    if len(values) > 1:
        return b"", ("conflicting Content-Length values", 400)
    text = values.pop()
    if not text.isdigit():
        return b"", (f"bad Content-Length {text[:20]!r}", 400)
    length = int(text)
    if length > len(rest):
        return b"", ("Content-Length exceeds the datagram", 400)
    return rest[:length], None


def _start_line(line: str) -> tuple[SipRequest | SipResponse, Defect | None]:
    if line[:4].upper() == "SIP/":
        return _status_line(line), None
    method, space, _ = line.partition(" ")
    if not space or not _TOKEN.match(method):
        raise SipParseError(f"bad start line {line[:60]!r}")
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):  # extra spaces, LWS in the URI, trailing spaces
        uri = next((part for part in parts[1:] if part), "")
        request = SipRequest(method=method.upper(), uri=uri)
        return request, ("Request-Line is not Method SP Request-URI SP SIP-Version", 400)
    _, uri, version = parts
    request = SipRequest(method=method.upper(), uri=uri)
    if version.upper() != SIP_VERSION:
        if _VERSION.match(version):
            return request, (f"SIP version {version[:20]!r} not supported", 505)
        return request, (f"bad SIP version {version[:20]!r}", 400)
    if not _REQUEST_URI.match(uri):
        return request, (f"bad Request-URI {uri[:60]!r}", 400)
    return request, None


def _status_line(line: str) -> SipResponse:
    parts = line.split(" ", 2)
    if len(parts) != 3 or parts[0].upper() != SIP_VERSION:
        raise SipParseError(f"bad status line {line[:60]!r}")
    if not (parts[1].isdigit() and len(parts[1]) == 3):
        raise SipParseError(f"bad status code {parts[1][:20]!r}")
    status = int(parts[1])
    if not 100 <= status <= 699:
        raise SipParseError(f"status code {status} out of range")
    return SipResponse(status=status, reason=parts[2].strip())


def check_request(request: SipRequest) -> None:
    """The mandatory headers of RFC 3261 §8.1.1 are present and parse."""
    for name in MANDATORY_REQUEST_HEADERS:
        if request.headers.get(name) is None:
            raise SipParseError(f"missing {name} header")
    number, method = request.cseq
    if method != request.method:
        raise SipParseError("CSeq method does not match the request method")
    if not 0 <= number < 2**31:
        raise SipParseError("CSeq number out of range")
    for name in SINGLE_VALUE_HEADERS:
        if len(request.headers.get_all(name)) > 1:
            raise SipParseError(f"more than one {name} header")
    for via in request.headers.get_all("Via"):  # every response copies them all
        Via.parse(via)
    for name in ("From", "To"):  # every response names them; a call flow reads them
        Address.parse(request.headers.get(name) or "")


def response_to(
    request: SipRequest, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> SipResponse:
    """A response copying Via, From, To (tag added when missing), Call-ID and CSeq (§8.2.6)."""
    response = SipResponse(status=status, reason=reason or REASONS.get(status, "Unknown"))
    for via in request.headers.get_all("Via"):
        response.headers.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is not None:
            if name == "To" and to_tag and status != 100 and not _has_tag(value):
                value = f"{value};tag={to_tag}"
            response.headers.add(name, value)
    return response


def _has_tag(to: str) -> bool:
    """The To header already carries a tag (parameters parsed, spaces around ``=`` allowed)."""
    try:
        return Address.parse(to).tag is not None
    except SipParseError:  # a malformed To being answered 400: leave it as it came
        return True
