"""Tokens that bind a Twilio media stream to a call trunkline answered, sans I/O.

Twilio signs a stream's WebSocket upgrade over the URL alone, so a captured
upgrade could open streams for calls that never happened. trunkline answers
Twilio's voice webhook with TwiML whose ``<Stream>`` carries a ``<Parameter>``
token: an expiry and an HMAC-SHA256 over the call's ``CallSid``, its dialled
and calling numbers and that expiry, keyed from the Twilio auth token. The
stream's ``start`` must carry an unexpired token for its own ``callSid`` and
numbers, and only once: ``UsedStreams`` remembers which calls already
streamed until their tokens expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import OrderedDict
from typing import Literal

TOKEN_PARAMETER = "trunkline_stream_token"
MAX_REMEMBERED_STREAMS = 65_536

RefusalReason = Literal["token_missing", "token_invalid", "token_expired", "replayed"]


class StreamTokenError(ValueError):
    """The stream's ``start`` does not prove that trunkline answered this call."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: RefusalReason = reason


def _mac(auth_token: str, call_sid: str, to: str, caller: str, expires: int) -> str:
    key = hmac.new(auth_token.encode(), b"trunkline twilio stream token", hashlib.sha256).digest()
    message = "\n".join((call_sid, to, caller, str(expires))).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue_stream_token(auth_token: str, call_sid: str, to: str, caller: str, expires: int) -> str:
    """The token the TwiML hands Twilio for this call, valid until ``expires`` (Unix time)."""
    return f"{expires}.{_mac(auth_token, call_sid, to, caller, expires)}"


def check_stream_token(
    token: str | None, auth_token: str, call_sid: str, to: str, caller: str, now: float
) -> int:
    """The token's expiry when it was issued for exactly this call and has not expired."""
    if not token:
        raise StreamTokenError("token_missing", "the stream's start carries no stream token")
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        raise StreamTokenError("token_invalid", "the stream token is malformed")
    expires = int(expires_text)
    expected = _mac(auth_token, call_sid, to, caller, expires)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        raise StreamTokenError("token_invalid", "the stream token was not issued for this call")
    if expires < now:
        raise StreamTokenError("token_expired", "the stream token has expired")
    return expires


class UsedStreams:
    """Calls that already opened a stream, remembered until their tokens expire (bounded)."""

    __slots__ = ("_expiry", "limit")

    def __init__(self, limit: int = MAX_REMEMBERED_STREAMS) -> None:
        self.limit = limit
        self._expiry: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def claim(self, call_sid: str, expires: int, now: float) -> None:
        """Record the call's stream; a second stream for it is refused."""
        remembered = self._expiry
        # Tokens share one lifetime, so the oldest entries expire first.
        while remembered and next(iter(remembered.values())) < now:
            remembered.popitem(last=False)
        if call_sid in remembered:
            raise StreamTokenError("replayed", "this call already has a media stream")
        if len(remembered) >= self.limit:  # refuse rather than forget a live token
            raise StreamTokenError("replayed", "too many streams opened within the token lifetime")
        remembered[call_sid] = expires
