"""Digest authentication of SIP requests from untrusted sources, sans I/O.

An INVITE from outside the trusted carrier networks must carry a digest
``Authorization`` for one of the passwords it may use (the configured trunk
user's, the dialled number's own); so must a request in a live dialog that
comes from neither its far end nor a trusted network. Without one the answer
is a 401 challenge; with a stale nonce, a new challenge marked ``stale``; with
a wrong password or an unknown user (or no such number), the same 403. The
caller sends the refusal once, statelessly, and decides which counter it
belongs to: ``refused`` counts INVITEs (``trunkline_sip_auth_refused``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from trunkline.gateway.sip.digest import DigestServer
from trunkline.gateway.sip.message import SipRequest

Passwords = dict[str, str]  # digest user → password


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request that did not authenticate: 401 with a challenge, or 403."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)  # as keywords: WWW_Authenticate


class TrunkAuth:
    """Checks requests from untrusted sources against the trunk's and the number's passwords."""

    def __init__(self, digest: DigestServer) -> None:
        self.digest = digest
        self.refused = 0  # INVITEs challenged or denied

    def challenge(self, source_host: str, *, stale: bool = False) -> Refusal:
        """401 with a fresh nonce that only ``source_host`` may use."""
        challenge = self.digest.challenge(source=source_host, stale=stale)
        return Refusal(401, {"WWW_Authenticate": challenge})

    def check(
        self,
        request: SipRequest,
        passwords: Callable[[], Passwords],
        source_host: str,
        now: float | None = None,
    ) -> Refusal | None:
        """None when the request carries a good answer for one of ``passwords()`` (asked
        only then: a request without an answer is challenged before any is looked at)."""
        header = request.headers.get("Authorization")
        if header is None:
            return self.challenge(source_host)
        verdict = self.digest.verify(
            header, request.method, passwords(), now, uri=request.uri, source=source_host
        )
        if verdict == "ok":
            return None
        if verdict == "denied":
            return Refusal(403)
        return self.challenge(source_host, stale=True)

    def check_invite(
        self, request: SipRequest, passwords: Callable[[], Passwords], source_host: str
    ) -> Refusal | None:
        """``check`` for an INVITE, counting each refusal in ``refused``."""
        refusal = self.check(request, passwords, source_host)
        if refusal is not None:
            self.refused += 1
        return refusal
