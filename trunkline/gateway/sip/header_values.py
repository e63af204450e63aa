"""The structured SIP header values: Via, name-addr/addr-spec addresses and SIP/tel URIs.

Each parses from the text of one header value (``Via.parse``, ``Address.parse``,
``SipUri.parse``) and raises ``SipParseError`` when it is malformed; ``;name=value``
parameters are kept with lower-cased names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trunkline.gateway.sip.parse_error import SipParseError


def _params(text: str, *, strict: bool = False) -> dict[str, str]:
    """``;name=value`` parameters; ``strict``: an empty one (``;;``) is an error."""
    params: dict[str, str] = {}
    for piece in text.split(";"):
        piece = piece.strip()
        if piece:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        elif strict:
            raise SipParseError(f"empty parameter in {text[:60]!r}")
    return params


# An unquoted display name is tokens separated by whitespace (RFC 3261 §25.1); characters
# beyond ASCII are let through.
_DISPLAY_TOKENS = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~\s\x80-\U0010ffff]*$")


# sent-protocol = "SIP" SLASH version SLASH transport, whitespace allowed around each
# SLASH (RFC 3261 §25.1; RFC 4475 §3.1.1.1), then whitespace and the sent-by.
_VIA = re.compile(r"\s*SIP\s*/\s*[0-9.]+\s*/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+(\S.*)", re.I | re.S)


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @classmethod
    def parse(cls, value: str) -> Via:
        match = _VIA.match(value)
        if match is None:
            raise SipParseError(f"bad Via {value[:60]!r}")
        transport, rest = match.groups()
        sent_by, semicolon, params = rest.partition(";")
        # sent-by = host [ COLON port ], and COLON may have whitespace around it (§25.1)
        host, port = split_host_port("".join(sent_by.split()))
        return cls(transport.upper(), host, port, _params(params, strict=bool(semicolon)))

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
        opening = _unquoted_index(text, "<", value)
        if opening >= 0:
            before, after = text[:opening], text[opening + 1 :]
            uri, closed, params = after.partition(">")
            if not closed:
                raise SipParseError(f"unclosed <> in {value[:60]!r}")
            before = before.strip()
            if not before.startswith('"') and not _DISPLAY_TOKENS.match(before):
                raise SipParseError(f"unquoted display name is not tokens in {value[:60]!r}")
            display = before.strip('"') or None
        else:
            uri, _, params = text.partition(";")
            uri = uri.rstrip()  # whitespace may precede the semicolon, not stand inside <>
            params = ";" + params if params else ""
        if ":" not in uri or any(char.isspace() for char in uri):
            raise SipParseError(f"bad URI in {value[:60]!r}")
        return cls(uri, display, _params(params))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        name = f'"{self.display_name}" ' if self.display_name else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{name}<{self.uri}>{params}"


def _unquoted_index(text: str, wanted: str, value: str) -> int:
    """Where ``wanted`` first stands outside a quoted string (RFC 3261 §25.1), or -1."""
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == wanted and not quoted:
            return index
    if quoted:
        raise SipParseError(f"unterminated quoted string in {value[:60]!r}")
    return -1


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
