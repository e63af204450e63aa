"""The Inkbox webhook signature scheme, for outbound webhooks and agent WebSocket upgrades.

    X-Inkbox-Request-ID: <id, stable across retries of one event>
    X-Inkbox-Timestamp:  <unix seconds>
    X-Inkbox-Signature:  sha256=<hex HMAC-SHA256(key, "{id}.{timestamp}." + raw body)>

The key is the identity's signing key with any ``whsec_`` prefix removed,
used as UTF-8 bytes. Receivers verify with ``verify_webhook``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

KEY_PREFIX = "whsec_"
REQUEST_ID_HEADER = "X-Inkbox-Request-ID"
TIMESTAMP_HEADER = "X-Inkbox-Timestamp"
SIGNATURE_HEADER = "X-Inkbox-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def new_signing_key() -> str:
    return KEY_PREFIX + secrets.token_hex(32)


def _digest(key: str, request_id: str, timestamp: str, body: bytes) -> str:
    message = f"{request_id}.{timestamp}.".encode() + body
    return hmac.new(key.removeprefix(KEY_PREFIX).encode(), message, hashlib.sha256).hexdigest()


def sign_headers(key: str, request_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three headers that let a receiver check ``body`` came from trunkline."""
    stamp = str(int(timestamp))
    return {
        REQUEST_ID_HEADER: request_id,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: "sha256=" + _digest(key, request_id, stamp, body),
    }


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    key: str,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """True when ``body`` carries a valid trunkline/Inkbox signature made within ``tolerance``.

    Header names are matched case-insensitively; the comparison is constant
    time; a timestamp more than ``tolerance`` seconds in the past or future is
    refused. Never raises for bad input.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    request_id = lowered.get(REQUEST_ID_HEADER.lower(), "")
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    if not signature.startswith("sha256=") or not request_id or not stamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = "sha256=" + _digest(key, request_id, stamp, raw)
    return hmac.compare_digest(expected.encode(), signature.encode())
