"""The caller's media address: an SDP ``c=`` host name resolved once, off the event loop.

SDP may name the media host by a DNS name (RFC 4566 §5.7); RTP needs an address.
``resolve_remote`` looks the name up once, before the offer is answered, with the
loop's ``getaddrinfo`` (a resolver thread: the loop never waits) within
``RESOLVE_SECONDS``, in the family the ``c=`` line names. A name that does not
resolve in time is an ``SdpError``: the offer is answered 488 Not Acceptable Here
instead of a call whose every RTP packet would fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket

from trunkline.gateway.sip.sdp import Negotiated, SdpError

RESOLVE_SECONDS = 2.0


def needs_resolving(negotiated: Negotiated) -> bool:
    """The offer named its media host by name, not by address."""
    try:
        ipaddress.ip_address(negotiated.remote_address)
    except ValueError:
        return True
    return False


async def resolve_remote(negotiated: Negotiated, address_type: str) -> Negotiated:
    """``negotiated`` with its remote host name replaced by an address (unchanged when it
    is one already); SdpError when the name does not resolve within ``RESOLVE_SECONDS``."""
    if not needs_resolving(negotiated):
        return negotiated
    name = negotiated.remote_address
    family = socket.AF_INET6 if address_type == "IP6" else socket.AF_INET
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            found = await loop.getaddrinfo(name, None, family=family, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError, TimeoutError):
        found = []
    if not found:
        raise SdpError(f"connection address {name[:40]!r} does not resolve")
    return dataclasses.replace(negotiated, remote_address=str(found[0][4][0]))
