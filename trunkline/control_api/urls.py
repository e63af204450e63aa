"""Which agent and webhook URLs the API accepts.

Agent WebSocket URLs must be ``wss://`` and webhook URLs ``https://``;
``TRUNKLINE_ALLOW_INSECURE_URLS`` additionally allows ``ws://`` and ``http://``.
Development mode (``TRUNKLINE_DEV``, ``trunkline serve --dev``) sets both
allowances; a refusal names the setting that would have allowed the URL.
A URL needs a host and may not carry credentials or a fragment. A host written
as a number in any form other than a dotted quad (``2130706433``, ``0x7f.1``,
``127.1``) is always refused: the connect-time guard would refuse it. Unless
``TRUNKLINE_ALLOW_PRIVATE_TARGETS`` is set, ``localhost`` and any IP literal the
connect-time guard refuses (loopback, private, link-local, CGNAT, reserved, and
IPv6 forms that embed an IPv4 address: ``::127.0.0.1``, ``::ffff:…``, NAT64,
6to4, Teredo) are refused here already; names are resolved and checked again
when connecting.
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from trunkline.config import Settings
from trunkline.control_api.errors import ApiError
from trunkline.webhooks.ssrf import address_problem, is_noncanonical_number

UrlKind = Literal["websocket", "webhook"]
MAX_URL_LENGTH = 2048
# What a refusal tells the operator would allow the URL (docs/configuration.md).
ALLOW_INSECURE_HINT = "TRUNKLINE_ALLOW_INSECURE_URLS=1 or trunkline serve --dev"
ALLOW_PRIVATE_HINT = "TRUNKLINE_ALLOW_PRIVATE_TARGETS=1 or trunkline serve --dev"

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
        hint = ""
        if parts.scheme.lower() == insecure:
            hint = f"; {insecure}:// is allowed with {ALLOW_INSECURE_HINT}"
        raise ApiError(422, f"{field}: must be a {wanted} URL{hint}")
    if not host:
        raise ApiError(422, f"{field}: must name a host")
    if parts.username is not None or parts.password is not None:
        raise ApiError(422, f"{field}: must not contain credentials")
    if parts.fragment:
        raise ApiError(422, f"{field}: must not contain a fragment")
    if port == 0:
        raise ApiError(422, f"{field}: port must be 1-65535")
    if is_noncanonical_number(host):
        raise ApiError(422, f"{field}: a numeric host must be a dotted-quad IPv4 address")
    problem = None if settings.allow_private_targets else _host_problem(host)
    if problem is not None:
        raise ApiError(
            422,
            f"{field}: private, loopback and link-local hosts are not allowed ({problem});"
            f" they are allowed with {ALLOW_PRIVATE_HINT}",
        )
    return value


def _host_problem(host: str) -> str | None:
    """Why the connect-time guard would refuse ``host``, when it can tell without DNS."""
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        return "localhost"
    try:
        address = ipaddress.ip_address(lowered)
    except ValueError:
        return None
    return address_problem(address)
