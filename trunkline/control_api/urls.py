"""Which agent and webhook URLs the API accepts.

Agent WebSocket URLs must be ``wss://`` and webhook URLs ``https://``;
``TRUNKLINE_ALLOW_INSECURE_URLS`` additionally allows ``ws://`` and ``http://``.
A URL needs a host and may not carry credentials or a fragment. Unless
``TRUNKLINE_ALLOW_PRIVATE_TARGETS`` is set, a host written as an IP literal in a
loopback, private, link-local or otherwise non-global range, or ``localhost``,
is refused here already; names are resolved and checked again when connecting.
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from trunkline.config import Settings
from trunkline.control_api.errors import ApiError

UrlKind = Literal["websocket", "webhook"]
MAX_URL_LENGTH = 2048

_SCHEMES: dict[UrlKind, tuple[str, str]] = {
    "websocket": ("wss", "ws"),
    "webhook": ("https", "http"),
}


def check_url(value: str, kind: UrlKind, settings: Settings, field: str) -> str:
    """Return ``value`` when acceptable, else raise ApiError(422) naming ``field``."""
    secure, insecure = _SCHEMES[kind]
    allowed = (secure, insecure) if settings.allow_insecure_urls else (secure,)
    wanted = " or ".join(f"{s}://" for s in allowed)
    if len(value) > MAX_URL_LENGTH:
        raise ApiError(422, f"{field}: must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ApiError(422, f"{field}: must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise ApiError(422, f"{field}: is not a valid URL") from None
    if parts.scheme.lower() not in allowed:
        raise ApiError(422, f"{field}: must be a {wanted} URL")
    if not host:
        raise ApiError(422, f"{field}: must name a host")
    if parts.username is not None or parts.password is not None:
        raise ApiError(422, f"{field}: must not contain credentials")
    if parts.fragment:
        raise ApiError(422, f"{field}: must not contain a fragment")
    if port == 0:
        raise ApiError(422, f"{field}: port must be 1-65535")
    if not settings.allow_private_targets and _is_private_host(host):
        raise ApiError(422, f"{field}: private, loopback and link-local hosts are not allowed")
    return value


def _is_private_host(host: str) -> bool:
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(lowered)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global
