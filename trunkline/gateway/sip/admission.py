"""Who may send SIP requests: trusted carrier networks, and a budget for everyone else.

Requests from a configured carrier network (``TRUNKLINE_SIP_TRUSTED_SOURCES``)
are admitted as they are. Requests from any other address spend tokens from a
per-source bucket (``rate`` per second, a burst of twice that); when it is
empty the request is dropped unanswered, so scanners get neither a response
nor the work of one. The table of buckets is bounded: the least recently seen
source is forgotten first. INVITEs from untrusted sources must then pass
digest authentication (``sip.trunk_auth``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from trunkline.ratelimit import KeyedBuckets

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_TRACKED_SOURCES = 10_000


def is_trusted(host: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class SourceBudget:
    """Requests per second per untrusted source address (a burst of twice the rate)."""

    def __init__(self, rate: float, max_sources: int = MAX_TRACKED_SOURCES) -> None:
        self._buckets = KeyedBuckets(rate, 2.0 * rate, max_sources)

    @property
    def dropped(self) -> int:
        return self._buckets.refused

    def admit(self, host: str, now: float) -> bool:
        return self._buckets.take(host, now).allowed

    def __len__(self) -> int:
        return len(self._buckets)
