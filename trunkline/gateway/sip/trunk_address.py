"""A trunk address as an operator writes it, sans I/O: host, port, transport, URI scheme.

``host[:port]`` is reached over UDP; ``sips:host[:port]`` over TLS;
``;transport=udp|tcp|tls`` picks the transport explicitly (a leading ``sip:``
is allowed). The default port is 5061 for TLS and 5060 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.gateway.sip.header_values import split_host_port
from trunkline.gateway.sip.parse_error import SipParseError

TRANSPORTS = ("UDP", "TCP", "TLS")


class TrunkAddressError(ValueError):
    """A trunk address that cannot be used."""


def default_port(transport: str) -> int:
    return 5061 if transport == "TLS" else 5060


@dataclass(frozen=True, slots=True)
class Trunk:
    """Where an outbound INVITE goes, parsed from a trunk address."""

    host: str
    port: int
    transport: str  # UDP, TCP or TLS
    secure_uri: bool  # written as sips:

    @classmethod
    def parse(cls, address: str) -> Trunk:
        text = address.strip()
        scheme, colon, rest = text.partition(":")
        secure_uri = False
        if colon and scheme.lower() in ("sip", "sips"):
            secure_uri = scheme.lower() == "sips"
            text = rest
        host_port, _, params = text.partition(";")
        transport = "TLS" if secure_uri else "UDP"
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "transport":
                transport = value.strip().upper()
        if transport not in TRANSPORTS or (secure_uri and transport != "TLS"):
            raise TrunkAddressError(f"bad trunk address {address!r}: transport {transport!r}")
        try:
            host, port = split_host_port(host_port.strip())
        except SipParseError as exc:
            raise TrunkAddressError(f"bad trunk address {address!r}: {exc}") from None
        return cls(host, port or default_port(transport), transport, secure_uri)

    def request_uri(self, user: str) -> str:
        """The Request-URI of a call to ``user`` through this trunk."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != default_port(self.transport):
            host = f"{host}:{self.port}"
        if self.secure_uri:
            return f"sips:{user}@{host}"
        suffix = "" if self.transport == "UDP" else f";transport={self.transport.lower()}"
        return f"sip:{user}@{host}{suffix}"
