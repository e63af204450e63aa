"""Outbound URL safety: agent-supplied URLs may not reach trunkline's own network.

Every agent-supplied URL (event webhooks, the incoming-call webhook, the agent
WebSocket) goes through here. The host is resolved once, every address of the
answer is checked, and the connection is made to a checked address — the name
is never resolved again between check and connect, so a DNS answer that
changes to 127.0.0.1 cannot be reached. TLS still uses the original host name
(SNI and certificate checks). Refused unless the operator allows private
targets: loopback, private, link-local (cloud metadata included), CGNAT,
multicast, reserved and unspecified addresses, IPv6 unique-local, and IPv6
forms that embed an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64).
Hosts written as numbers in non-canonical forms (``2130706433``, ``0x7f.1``,
``017700000001``, ``127.1``) are refused outright.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*$", re.IGNORECASE)


class UnsafeTarget(Exception):
    """A URL trunkline will not connect to; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: connect to ``address``, speak to ``host``."""

    scheme: str
    host: str
    port: int
    address: str


def address_problem(address: IpAddress) -> str | None:
    """Why an address may not be reached, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "IPv4-mapped IPv6 address"
        if address in _NAT64 or address in _NAT64_LOCAL:
            return "NAT64 address"
        if address.sixtofour is not None:
            return "6to4 address"
        if address.teredo is not None:
            return "Teredo address"
        if address.packed[:12] == bytes(12) and int(address) > 1:
            return "IPv4-compatible IPv6 address"
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address (includes cloud metadata)"
    if address.is_multicast:
        return "multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "carrier-grade NAT address"
    if address.is_private:
        return "private address"
    if address.is_reserved or not address.is_global:
        return "reserved address"
    return None


def parse_target_url(url: str, schemes: Sequence[str] = ("https", "http", "wss", "ws")) -> Target:
    """Split and sanity-check a URL without resolving it (``address`` is left empty)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise UnsafeTarget(f"scheme {scheme or '(none)'!r} is not allowed")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("URLs with credentials are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeTarget("the URL names no host")
    if "%" in host or any(ord(c) < 0x21 or ord(c) > 0x7E for c in host):
        raise UnsafeTarget("the host contains encoded or non-ASCII characters")
    if is_noncanonical_number(host):
        raise UnsafeTarget(f"numeric host {host!r} is not a canonical IPv4 address")
    return Target(scheme, host, port or DEFAULT_PORTS[scheme], "")


def is_noncanonical_number(host: str) -> bool:
    """A host written as a number other than a dotted quad (``2130706433``, ``0x7f.1``)."""
    host = host.rstrip(".")
    return bool(_NUMERIC_HOST.match(host)) and not _is_dotted_quad(host)


def _is_dotted_quad(host: str) -> bool:
    pieces = host.split(".")
    return len(pieces) == 4 and all(p.isdigit() and str(int(p)) == p for p in pieces)


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_lookup(host: str, port: int) -> Sequence[str]:
    """Every address the system resolver returns for ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def check_addresses(host: str, addresses: Sequence[str], allow_private: bool) -> list[str]:
    """The addresses, when every one is acceptable; UnsafeTarget naming the first that is not."""
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve")
    checked: list[str] = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        problem = address_problem(address)
        if problem is not None and not allow_private:
            raise UnsafeTarget(f"{host} resolves to a {problem} ({address})")
        if problem in ("unspecified address", "multicast address"):
            raise UnsafeTarget(f"{host} resolves to a {problem} ({address})")
        checked.append(str(address))
    return checked


async def resolve_target(
    url: str, *, allow_private: bool, lookup: Lookup = system_lookup
) -> Target:
    """Parse, resolve once and check ``url``; the Target holds the address to connect to."""
    target = parse_target_url(url)
    literal = _literal(target.host)
    if literal is not None:
        addresses = check_addresses(target.host, [str(literal)], allow_private)
    else:
        try:
            resolved = await lookup(target.host, target.port)
        except OSError as exc:
            raise UnsafeTarget(f"{target.host} does not resolve: {exc}") from None
        addresses = check_addresses(target.host, resolved, allow_private)
    return Target(target.scheme, target.host, target.port, addresses[0])


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that resolves once and refuses unsafe answers.

    aiohttp connects to exactly the addresses a resolver returns and keeps
    the original host for TLS, so checking here closes the gap between check
    and connect. Literal IP hosts skip resolvers in aiohttp: callers check the
    URL with ``parse_target_url``/``check_url_literal`` first.
    """

    def __init__(self, *, allow_private: bool, lookup: Lookup = system_lookup) -> None:
        self._allow_private = allow_private
        self._lookup = lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            resolved = await self._lookup(host, port)
        except OSError as exc:
            raise OSError(f"{host} does not resolve: {exc}") from exc
        try:
            addresses = check_addresses(host, resolved, self._allow_private)
        except UnsafeTarget as exc:
            raise OSError(str(exc)) from exc  # aiohttp reports it as a connection error
        results: list[ResolveResult] = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            results.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None


def check_url_literal(url: str, *, allow_private: bool) -> Target:
    """Parse ``url`` and, when its host is an IP literal, check it (names are checked on connect)."""
    target = parse_target_url(url)
    literal = _literal(target.host)
    if literal is not None:
        check_addresses(target.host, [str(literal)], allow_private)
    return target


def connector_options(allow_private: bool, lookup: Lookup = system_lookup) -> dict[str, Any]:
    """Keyword arguments for ``aiohttp.TCPConnector`` that route every lookup through the guard."""
    return {
        "resolver": GuardedResolver(allow_private=allow_private, lookup=lookup),
        "use_dns_cache": False,
    }
