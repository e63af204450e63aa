"""SIP messages (RFC 3261 §7, §20, §25), sans I/O: parse bytes into messages and back.

Header names are case-insensitive and compact forms (``i``, ``f``, ``t``, ``v``,
``m``, ``l``, ``c``, ``k``, ``s``, ``e``) are expanded. Folded continuation
lines are joined. Comma-separated values of multi-value headers are split
outside quotes and angle brackets. Over UDP the body is exactly
``Content-Length`` bytes: a shorter datagram is an error, extra bytes are
dropped (RFC 3261 §18.3).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 65_535
MAX_HEADERS = 128
SIP_VERSION = "SIP/2.0"
COMPACT_NAMES = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
}
CANONICAL_NAMES = {
    name.lower(): name
    for name in (
        "Accept", "Allow", "Authorization", "Call-ID", "Contact", "Content-Length",
        "Content-Type", "CSeq", "Expires", "From", "Max-Forwards", "Proxy-Authenticate",
        "Proxy-Authorization", "Record-Route", "Require", "Retry-After", "Route", "Server",
        "Supported", "To", "User-Agent", "Via", "WWW-Authenticate", "Reason", "Unsupported",
        "Session-Expires", "Min-SE", "Event", "Subject", "Content-Encoding", "Allow-Events",
    )
}  # fmt: skip
# Headers whose value may be a comma-separated list (split on parse).
LIST_HEADERS = frozenset(
    {"via", "contact", "route", "record-route", "allow", "supported", "require", "accept",
     "unsupported"}
)  # fmt: skip
MANDATORY_REQUEST_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 183: "Session Progress",
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
    408: "Request Timeout", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 504: "Server Time-out", 603: "Decline",
}  # fmt: skip


class SipParseError(ValueError):
    """Bytes that are not a well-formed SIP message."""


def canonical_name(name: str) -> str:
    lowered = name.strip().lower()
    if lowered in COMPACT_NAMES:
        return COMPACT_NAMES[lowered]
    return CANONICAL_NAMES.get(lowered, name.strip())


def split_list(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and <...>."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    index = 0
    while index < len(value):
        char = value[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(value[start:index].strip())
            start = index + 1
        index += 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


class Headers:
    """An ordered multi-map of header values keyed case-insensitively by canonical name."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = canonical_name(name).lower()
        for key, value in self._items:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = canonical_name(name).lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by one (in the place of the first)."""
        wanted = canonical_name(name)
        kept: list[tuple[str, str]] = []
        placed = False
        for key, existing in self._items:
            if key.lower() == wanted.lower():
                if not placed:
                    kept.append((wanted, value))
                    placed = True
            else:
                kept.append((key, existing))
        if not placed:
            kept.append((wanted, value))
        self._items = kept

    def remove(self, name: str) -> None:
        wanted = canonical_name(name).lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != wanted]

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone


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
    """Parse one SIP message from a datagram; SipParseError when it is not one."""
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
    message = _start_line(lines[0])
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            raise SipParseError(f"bad header line {line[:60]!r}")
        canonical = canonical_name(name)
        value = value.strip()
        if canonical.lower() in LIST_HEADERS:
            for part in split_list(value):
                message.headers.add(canonical, part)
        else:
            message.headers.add(canonical, value)
    length_text = message.headers.get("Content-Length")
    if length_text is None:
        message.body = rest  # UDP: the datagram ends the message
    else:
        try:
            length = int(length_text)
        except ValueError:
            raise SipParseError(f"bad Content-Length {length_text!r}") from None
        if length < 0 or length > len(rest):
            raise SipParseError("Content-Length exceeds the datagram")
        message.body = rest[:length]
    return message


def _start_line(line: str) -> SipRequest | SipResponse:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise SipParseError(f"bad start line {line[:60]!r}")
    if parts[0] == SIP_VERSION:
        if not (parts[1].isdigit() and len(parts[1]) == 3):
            raise SipParseError(f"bad status code {parts[1]!r}")
        status = int(parts[1])
        if not 100 <= status <= 699:
            raise SipParseError(f"status code {status} out of range")
        return SipResponse(status=status, reason=parts[2].strip())
    method, uri, version = parts
    if version.strip() != SIP_VERSION:
        raise SipParseError(f"unsupported version {version.strip()!r}")
    if not _TOKEN.match(method):
        raise SipParseError(f"bad method {method!r}")
    if ":" not in uri or " " in uri:
        raise SipParseError(f"bad Request-URI {uri!r}")
    return SipRequest(method=method.upper(), uri=uri)


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
    request.top_via  # noqa: B018 - parses or raises


# -- header values --------------------------------------------------------------


def _params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for piece in text.split(";"):
        piece = piece.strip()
        if piece:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
    return params


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @classmethod
    def parse(cls, value: str) -> Via:
        protocol, _, rest = value.strip().partition(" ")
        pieces = protocol.split("/")
        if len(pieces) != 3 or pieces[0].upper() != "SIP":
            raise SipParseError(f"bad Via {value[:60]!r}")
        sent_by, _, params = rest.strip().partition(";")
        host, port = split_host_port(sent_by.strip())
        return cls(pieces[2].upper(), host, port, _params(params))

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")


def split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise SipParseError("empty host")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port {port_text!r}")
        return host, int(port_text)
    return host, None


@dataclass(slots=True)
class Address:
    """A name-addr or addr-spec: ``"Alice" <sip:alice@host>;tag=abc``."""

    uri: str
    display_name: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Address:
        text = value.strip()
        display: str | None = None
        if "<" in text:
            before, _, after = text.partition("<")
            uri, closed, params = after.partition(">")
            if not closed:
                raise SipParseError(f"unclosed <> in {value[:60]!r}")
            display = before.strip().strip('"') or None
        else:
            uri, _, params = text.partition(";")
            params = ";" + params if params else ""
        if ":" not in uri:
            raise SipParseError(f"bad URI in {value[:60]!r}")
        return cls(uri.strip(), display, _params(params))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        name = f'"{self.display_name}" ' if self.display_name else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{name}<{self.uri}>{params}"


@dataclass(slots=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.strip().partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips", "tel"):
            raise SipParseError(f"unsupported URI {text[:60]!r}")
        rest, _, _headers = rest.partition("?")
        if scheme == "tel":
            number, _, params = rest.partition(";")
            return cls(scheme, number, "", None, _params(params))
        userinfo, at, hostport = rest.rpartition("@")
        hostport, _, params = hostport.partition(";")
        user = userinfo.partition(":")[0] if at else None
        host, port = split_host_port(hostport)
        return cls(scheme, _unescape(user) if user else None, host.lower(), port, _params(params))


def _unescape(text: str) -> str:
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


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
            if name == "To" and to_tag and status != 100 and ";tag=" not in value.lower():
                value = f"{value};tag={to_tag}"
            response.headers.add(name, value)
    return response
