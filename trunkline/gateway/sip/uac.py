"""An outbound INVITE dialog as a sans-I/O state machine (RFC 3261 §12-§15, §22).

``OutboundInvite`` builds the INVITE, turns each final or provisional response
into a step the gateway acts on, answers one 401/407 digest challenge per
nonce with the trunk credentials, builds the ACK for a 2xx, a CANCEL while
ringing, and in-dialog BYEs once answered. It never touches a socket or a
clock: the transaction layer retransmits, the gateway sends.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from trunkline.gateway.sip.dialog_guard import Dialog
from trunkline.gateway.sip.digest import Challenge, DigestError
from trunkline.gateway.sip.header_values import Address
from trunkline.gateway.sip.message import SipRequest, SipResponse
from trunkline.gateway.sip.parse_error import SipParseError

USER_AGENT = "trunkline"
SipAddress = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Ringing:
    status: int


@dataclass(frozen=True, slots=True)
class Resend:
    """Send this INVITE in a new client transaction (a challenge was answered)."""

    invite: SipRequest


@dataclass(frozen=True, slots=True)
class Answered:
    ack: SipRequest
    sdp: bytes


@dataclass(frozen=True, slots=True)
class Failed:
    status: int
    reason: str


Step = Ringing | Resend | Answered | Failed | None


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(10)


@dataclass
class OutboundInvite:
    """One outbound call's INVITE and, once answered, its dialog."""

    request_uri: str
    from_number: str
    to_number: str
    via_host: str
    via_port: int
    contact: str
    offer: bytes
    destination: SipAddress  # the trunk's address: the INVITE, CANCEL, ACK and BYE go there
    credentials: Credentials | None = None
    transport: str = "UDP"  # UDP, TCP or TLS: what the Via says we send over
    call_id: str = field(default_factory=lambda: secrets.token_hex(16) + "@trunkline")
    local_tag: str = field(default_factory=lambda: secrets.token_hex(8))
    cseq: int = field(default_factory=lambda: secrets.randbelow(2**16) + 1)
    current: SipRequest | None = None
    remote_tag: str | None = None
    remote_uri: str | None = None
    route_set: list[str] = field(default_factory=list)
    answered: bool = False
    _answered_nonces: set[str] = field(default_factory=set)
    _authorization: tuple[str, str] | None = None  # (header name, value) of the last answer

    @property
    def local_party(self) -> str:
        """Our From header (with tag): the From of every request we send in this dialog."""
        host = self.request_uri.partition("@")[2] or self.via_host
        return f"<sip:{self.from_number}@{host}>;tag={self.local_tag}"

    @property
    def remote_party(self) -> str:
        """The To header: the dialled party, with its tag once a response carried one."""
        host = self.request_uri.partition("@")[2]
        base = f"<sip:{self.to_number}@{host}>"
        return f"{base};tag={self.remote_tag}" if self.remote_tag else base

    @property
    def identity(self) -> Dialog:
        """The dialog as the far end names it: our tag, theirs, and the trunk it went to."""
        return Dialog(self.local_tag, self.remote_tag, frozenset((self.destination,)))

    def invite(self) -> SipRequest:
        """A fresh INVITE (new branch, next CSeq) carrying the offer and any credentials."""
        self.cseq += 1
        request = self._request("INVITE", self.request_uri, new_branch())
        request.headers.add("Contact", self.contact)
        request.headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")
        if self._authorization is not None:
            request.headers.add(*self._authorization)
        request.headers.add("Content-Type", "application/sdp")
        request.body = self.offer
        self.current = request
        return request

    def _request(self, method: str, uri: str, branch: str) -> SipRequest:
        request = SipRequest(method=method, uri=uri)
        request.headers.add(
            "Via",
            f"SIP/2.0/{self.transport} {self.via_host}:{self.via_port};branch={branch};rport",
        )
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", self.local_party)
        request.headers.add("To", self.remote_party if method != "INVITE" else self._to_header())
        request.headers.add("Call-ID", self.call_id)
        request.headers.add("CSeq", f"{self.cseq} {method}")
        request.headers.add("User-Agent", USER_AGENT)
        return request

    def _to_header(self) -> str:
        host = self.request_uri.partition("@")[2]
        return f"<sip:{self.to_number}@{host}>"

    def on_response(self, response: SipResponse) -> Step:
        """What the gateway should do about a response to the current INVITE."""
        status = response.status
        if status < 101:
            return None
        if status < 200:
            return Ringing(status) if status in (180, 183) else None
        if status < 300:
            return self._answer(response)
        if status in (401, 407):
            return self._challenged(response)
        return Failed(status, response.reason)

    def _challenged(self, response: SipResponse) -> Step:
        asked = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
        header = response.headers.get(asked)
        if self.credentials is None or header is None:
            return Failed(response.status, "trunk requires authentication")
        try:
            challenge = Challenge.parse(header)
        except DigestError as exc:
            return Failed(response.status, f"unusable challenge: {exc}")
        stale = "stale=true" in header.replace(" ", "").lower()
        if challenge.nonce in self._answered_nonces or (self._answered_nonces and not stale):
            return Failed(response.status, "trunk rejected the credentials")
        self._answered_nonces.add(challenge.nonce)
        value = challenge.authorization(
            self.credentials.username, self.credentials.password, "INVITE", self.request_uri
        )
        self._authorization = (answer, value)
        return Resend(self.invite())

    def _answer(self, response: SipResponse) -> Step:
        to = response.headers.get("To") or ""
        contact = response.headers.get("Contact")
        try:
            self.remote_tag = Address.parse(to).tag
            self.remote_uri = Address.parse(contact).uri if contact else self.request_uri
        except SipParseError:
            self.remote_uri = self.request_uri
        # The route set is the 2xx's Record-Route list, reversed (RFC 3261 §12.1.2).
        self.route_set = list(reversed(response.headers.get_all("Record-Route")))
        self.answered = True
        return Answered(self.ack(), response.body)

    def ack(self) -> SipRequest:
        """The ACK for the 2xx: its own transaction, sent to the remote target (§13.2.2.4)."""
        ack = self._request("ACK", self.remote_uri or self.request_uri, new_branch())
        ack.headers.set("CSeq", f"{self.cseq} ACK")
        for route in self.route_set:
            ack.headers.add("Route", route)
        if self._authorization is not None:
            ack.headers.add(*self._authorization)
        return ack

    def cancel(self) -> SipRequest:
        """CANCEL for the pending INVITE: same Via branch, same CSeq number (§9.1)."""
        assert self.current is not None
        cancel = SipRequest(method="CANCEL", uri=self.current.uri)
        cancel.headers.add("Via", self.current.headers.get("Via") or "")
        cancel.headers.add("Max-Forwards", "70")
        cancel.headers.add("From", self.local_party)
        cancel.headers.add("To", self._to_header())
        cancel.headers.add("Call-ID", self.call_id)
        cancel.headers.add("CSeq", f"{self.cseq} CANCEL")
        cancel.headers.add("User-Agent", USER_AGENT)
        return cancel

    def bye(self) -> SipRequest:
        """An in-dialog BYE toward the remote target, through the route set."""
        self.cseq += 1
        bye = self._request("BYE", self.remote_uri or self.request_uri, new_branch())
        for route in self.route_set:
            bye.headers.add("Route", route)
        return bye
