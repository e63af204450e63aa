"""An inbound INVITE dialog as a sans-I/O object (RFC 3261 §12, §13.3, §15).

``InboundDialog`` is the far end's INVITE seen from the answering side, the
counterpart of ``uac.OutboundInvite``: it keeps what the dialog needs (the
INVITE and its server transaction, where it came from, both tags, the remote
target, the route set and our CSeq) and builds the messages trunkline sends in
it: provisional responses, the 200 OK with its SDP answer, rejections, and
the BYE when trunkline hangs up. It never touches a socket or a clock: the
SIP endpoint sends what it builds.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from trunkline.gateway.sip.dialog_guard import Dialog
from trunkline.gateway.sip.header_values import Address, SipUri
from trunkline.gateway.sip.message import SipRequest, SipResponse, response_to
from trunkline.gateway.sip.parse_error import SipParseError
from trunkline.gateway.sip.transaction import ServerTransaction

SipAddress = tuple[str, int]
USER_AGENT = "trunkline"


def response_with(
    request: SipRequest,
    status: int,
    to_tag: str,
    headers: dict[str, str],
    reason: str | None = None,
) -> SipResponse:
    """``response_to`` plus extra headers given as keywords (``Retry_After`` → ``Retry-After``)."""
    response = response_to(request, status, reason, to_tag=to_tag)
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    return response


def remote_target_of(request: SipRequest, source: SipAddress) -> SipAddress:
    """Where in-dialog requests go: the Contact's address when it is literal, else the source."""
    contact = request.headers.get("Contact")
    if contact:
        try:
            uri = SipUri.parse(Address.parse(contact).uri)
            ipaddress.ip_address(uri.host)
            secure = uri.scheme == "sips" or uri.params.get("transport", "").lower() == "tls"
            return (uri.host, uri.port or (5061 if secure else 5060))
        except (SipParseError, ValueError):
            pass
    return source


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(10)


@dataclass
class InboundDialog:
    """One inbound call's INVITE and the dialog it opens, as the answering side keeps it."""

    invite: SipRequest  # the INVITE that opened the dialog
    transaction: ServerTransaction  # the dialog's latest INVITE transaction (re-INVITEs too)
    source: SipAddress  # where the INVITE came from
    local_tag: str = field(default_factory=lambda: secrets.token_hex(8))
    remote_target: SipAddress = ("", 0)
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = field(default_factory=lambda: secrets.randbelow(2**20) + 1)
    transport: str = "UDP"  # what the INVITE came over: UDP, TCP or TLS

    @classmethod
    def accept(
        cls, transaction: ServerTransaction, source: SipAddress, transport: str = "UDP"
    ) -> InboundDialog:
        """The dialog an INVITE from ``source`` opens, with a fresh local tag."""
        request = transaction.request
        return cls(
            invite=request,
            transaction=transaction,
            source=source,
            remote_target=remote_target_of(request, source),
            route_set=request.headers.get_all("Record-Route"),
            transport=transport,
        )

    @property
    def next_hop(self) -> SipAddress:
        """Where our in-dialog requests go: over TCP or TLS, back on the connection the
        INVITE came in on (the far end's source); over UDP, ``first_hop``."""
        return self.first_hop if self.transport == "UDP" else self.source

    @property
    def remote_from(self) -> str:
        """The far end's From header, as its INVITE carried it (our BYE's To)."""
        return self.invite.headers.get("From") or ""

    @property
    def local_to(self) -> str:
        """The INVITE's To header with our tag (our BYE's From)."""
        return f"{self.invite.headers.get('To')};tag={self.local_tag}"

    @property
    def identity(self) -> Dialog:
        """The dialog as the far end names it: our tag, theirs, and where it sends from."""
        try:
            remote_tag = Address.parse(self.remote_from).tag
        except SipParseError:
            remote_tag = None
        return Dialog(self.local_tag, remote_tag, frozenset((self.source, self.remote_target)))

    def provisional(self, status: int = 180) -> SipResponse:
        """A provisional response (180 Ringing by default) carrying our tag."""
        return response_to(self.invite, status, to_tag=self.local_tag)

    def reject(self, status: int, reason: str | None = None, **headers: str) -> SipResponse:
        """A final refusal of the INVITE; keywords are extra headers (``Retry_After="30"``)."""
        return response_with(self.invite, status, self.local_tag, headers, reason)

    def answer(self, sdp: bytes, contact: str) -> SipResponse:
        """The 200 OK: our tag, the INVITE's Record-Route set, our Contact and the SDP answer."""
        ok = response_to(self.invite, 200, to_tag=self.local_tag)
        for route in self.route_set:
            ok.headers.add("Record-Route", route)
        ok.headers.add("Contact", contact)
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = sdp
        return ok

    def target_uri(self) -> str:
        """The Request-URI of our in-dialog requests: the far end's Contact."""
        contact = self.invite.headers.get("Contact")
        if contact:
            try:
                return Address.parse(contact).uri
            except SipParseError:
                pass
        host, port = self.remote_target
        return f"sip:{host}:{port}"

    @property
    def first_hop(self) -> SipAddress:
        """Where our in-dialog requests are sent (RFC 3261 §12.2.1.1, §8.1.2): the first
        route of the route set (a proxy that record-routed the INVITE, a SIP load balancer
        say), else the remote target. A route whose host is a name, not a literal
        address, is the proxy the INVITE came through: its source."""
        if not self.route_set:
            return self.remote_target
        try:
            uri = SipUri.parse(Address.parse(self.route_set[0]).uri)
            ipaddress.ip_address(uri.host)
        except (SipParseError, ValueError):
            return self.source
        return (uri.host, uri.port or 5060)

    def bye(self, via: SipAddress) -> SipRequest:
        """Our BYE (next CSeq) toward the remote target, through the route set: sent to
        ``first_hop``. A first route without ``lr`` is a strict router (RFC 2543): it becomes
        the Request-URI and the remote target goes last in the Route header (§12.2.1.1)."""
        self.local_cseq += 1
        uri, routes = self.target_uri(), list(self.route_set)
        if routes and not _loose_routes(routes[0]):
            uri, routes = _uri_of(routes[0]), [*routes[1:], f"<{uri}>"]
        bye = SipRequest(method="BYE", uri=uri)
        host, port = via
        via_value = f"SIP/2.0/{self.transport} {host}:{port};branch={new_branch()};rport"
        bye.headers.add("Via", via_value)
        for route in routes:
            bye.headers.add("Route", route)
        bye.headers.add("Max-Forwards", "70")
        bye.headers.add("From", self.local_to)
        bye.headers.add("To", self.remote_from)
        bye.headers.add("Call-ID", self.invite.call_id)
        bye.headers.add("CSeq", f"{self.local_cseq} BYE")
        bye.headers.add("User-Agent", USER_AGENT)
        return bye


def _uri_of(route: str) -> str:
    try:
        return Address.parse(route).uri
    except SipParseError:
        return route.strip().strip("<>")


def _loose_routes(route: str) -> bool:
    """Whether a route set entry names a loose router (its URI has ``lr``, RFC 3261 §19.1.1)."""
    try:
        return "lr" in SipUri.parse(_uri_of(route)).params
    except SipParseError:
        return True  # an unreadable route is passed on as it is
