"""SIP transactions (RFC 3261 §17), sans I/O, over UDP or a reliable stream (TCP, TLS).

Each transaction takes messages and the current time and returns datagrams to
send; ``deadline`` says when ``fire`` must next be called. Timers: A/B/D for
INVITE clients, E/F/K for other clients, G/H/I for INVITE servers, J for other
servers, with T1 = 500 ms, T2 = 4 s, T4 = 5 s.

``server_key`` names the server transaction a request belongs to (§17.2.3):
a branch with the magic cookie ``z9hG4bK`` is the key with the sent-by and the
method (an ACK's and a CANCEL's are their INVITE's); any other branch — RFC
2543 peers send none, and a bare cookie names nothing — falls back to the
Request-URI, To tag, From tag, Call-ID, CSeq and top Via.

The INVITE server transaction retransmits every final response — 2xx too,
standing in for the dialog layer's 2xx retransmission (§13.3.1.4) — until the
ACK arrives or Timer H expires (RFC 6026's Accepted state plays the same role).

Over a reliable transport (``reliable=True``) nothing is retransmitted: Timers
A, E and G are not used and D, I, J and K are zero (§17.1.1.2, §17.1.2.2,
§17.2.1, §17.2.2); Timers B, F and H still bound how long an answer may take.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from trunkline.gateway.sip.header_values import Address as NameAddress
from trunkline.gateway.sip.message import SipRequest, SipResponse

T1 = 0.5
T2 = 4.0
T4 = 5.0
MAGIC_COOKIE = "z9hG4bK"
Address = tuple[str, int]
TransactionKey = tuple[str, ...]


def server_key(
    request: SipRequest, *, method: str | None = None, to_tag: str | None = None
) -> TransactionKey:
    """The server transaction ``request`` belongs to (RFC 3261 §17.2.3).

    ``method`` names another transaction of the same request (a CANCEL's INVITE);
    ``to_tag`` replaces the request's To tag in the RFC 2543 key (an ACK matched to
    the INVITE it acknowledges, whose own To had none).
    """
    via = request.top_via
    method = method or ("INVITE" if request.method == "ACK" else request.method)
    branch = via.branch
    if branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
        sent_by = f"{via.host.lower()}:{via.port or 5060}"
        return ("3261", branch, sent_by, method)
    if to_tag is None:
        to_tag = NameAddress.parse(request.headers.get("To") or "").tag or ""
    from_tag = NameAddress.parse(request.headers.get("From") or "").tag or ""
    top_via = "".join((request.headers.get("Via") or "").split())
    number = str(request.cseq[0])
    return ("2543", request.uri, to_tag, from_tag, request.call_id, number, method, top_via)


def to_tag_of(message: SipRequest | SipResponse) -> str:
    """The tag of a message's To header ("" when it has none or does not parse)."""
    try:
        return NameAddress.parse(message.headers.get("To") or "").tag or ""
    except ValueError:
        return ""


@dataclass(frozen=True, slots=True)
class Datagram:
    data: bytes
    address: Address


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


NEVER = float("inf")


class ServerTransaction:
    """INVITE (``invite=True``) or non-INVITE server transaction."""

    __slots__ = (
        "_interval",
        "_last",
        "_ack_deadline",
        "address",
        "deadline",
        "final_to_tag",
        "invite",
        "on_timeout",
        "reliable",
        "request",
        "state",
    )

    def __init__(
        self,
        request: SipRequest,
        address: Address,
        on_timeout: Callable[[ServerTransaction], None] | None = None,
        *,
        reliable: bool = False,
    ) -> None:
        self.request = request
        self.address = address
        self.reliable = reliable
        self.invite = request.method == "INVITE"
        self.state = State.PROCEEDING if self.invite else State.TRYING
        self._last: bytes | None = None
        self._interval = T1
        self._ack_deadline = NEVER
        self.deadline = NEVER
        self.on_timeout = on_timeout
        self.final_to_tag: str | None = None  # the To tag of the final response sent

    def respond(self, response: SipResponse, now: float) -> list[Datagram]:
        """Send a response from the transaction user."""
        if self.state in (State.COMPLETED, State.CONFIRMED, State.TERMINATED):
            return []
        data = response.serialize()
        self._last = data
        if response.status >= 200:
            self.final_to_tag = to_tag_of(response)
            if self.invite:
                self.state = State.COMPLETED
                self._interval = T1
                self.deadline = now + T1  # Timer G
                self._ack_deadline = now + 64 * T1  # Timer H
                if self.reliable:
                    self.deadline = self._ack_deadline  # no Timer G on a reliable transport
            else:
                self.state = State.COMPLETED
                self.deadline = now + (0.0 if self.reliable else 64 * T1)  # Timer J
        elif not self.invite:
            self.state = State.PROCEEDING
        return [Datagram(data, self.address)]

    def on_retransmission(self, request: SipRequest, now: float) -> list[Datagram]:
        """The same request arrived again (or the ACK of an INVITE)."""
        if self.invite and request.method == "ACK":
            if self.state == State.COMPLETED:
                self.state = State.CONFIRMED
                self.deadline = now + (0.0 if self.reliable else T4)  # Timer I
            return []
        if self._last is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            return [Datagram(self._last, self.address)]
        return []

    def fire(self, now: float) -> list[Datagram]:
        if now < self.deadline:
            return []
        if self.invite and self.state == State.COMPLETED:
            if now >= self._ack_deadline:  # Timer H: no ACK
                self.state = State.TERMINATED
                self.deadline = NEVER
                if self.on_timeout is not None:
                    self.on_timeout(self)
                return []
            self._interval = min(self._interval * 2, T2)
            self.deadline = min(now + self._interval, self._ack_deadline)
            assert self._last is not None
            return [Datagram(self._last, self.address)]
        self.state = State.TERMINATED  # Timer I or J
        self.deadline = NEVER
        return []


ResponseHandler = Callable[[SipResponse], None]
TimeoutHandler = Callable[[], None]


class ClientTransaction:
    """INVITE or non-INVITE client transaction; ``on_response`` gets each new response."""

    __slots__ = (
        "_data",
        "_interval",
        "_timeout_at",
        "address",
        "deadline",
        "invite",
        "on_response",
        "on_timeout",
        "reliable",
        "request",
        "state",
    )

    def __init__(
        self,
        request: SipRequest,
        address: Address,
        on_response: ResponseHandler,
        on_timeout: TimeoutHandler,
        *,
        reliable: bool = False,
    ) -> None:
        self.request = request
        self.address = address
        self.reliable = reliable
        self.invite = request.method == "INVITE"
        self.on_response = on_response
        self.on_timeout = on_timeout
        self.state = State.CALLING if self.invite else State.TRYING
        self._data = request.serialize()
        self._interval = T1
        self._timeout_at = NEVER
        self.deadline = NEVER

    def start(self, now: float) -> list[Datagram]:
        self._timeout_at = now + 64 * T1  # Timer B / F
        # Timer A / E; a reliable transport retransmits nothing, only B / F run.
        self.deadline = self._timeout_at if self.reliable else now + T1
        return [Datagram(self._data, self.address)]

    def on_message(self, response: SipResponse, now: float) -> list[Datagram]:
        status = response.status
        if self.state in (State.COMPLETED, State.TERMINATED):
            if self.invite and self.state == State.COMPLETED and status >= 300:
                return [Datagram(self._ack_for(response), self.address)]  # lost ACK: resend
            return []
        if status < 200:
            self.state = State.PROCEEDING
            if self.invite:  # no more retransmission; Timer B applies only while Calling
                self.deadline = NEVER
                self._timeout_at = NEVER
            self.on_response(response)
            return []
        sends: list[Datagram] = []
        if self.invite and status >= 300:
            sends.append(Datagram(self._ack_for(response), self.address))
            self.state = State.COMPLETED
            self.deadline = now + (0.0 if self.reliable else 32.0)  # Timer D
        elif self.invite:
            self.state = State.TERMINATED  # the dialog layer ACKs a 2xx
            self.deadline = NEVER
        else:
            self.state = State.COMPLETED
            self.deadline = now + (0.0 if self.reliable else T4)  # Timer K
        self.on_response(response)
        return sends

    def _ack_for(self, response: SipResponse) -> bytes:
        """ACK for a non-2xx final response: same branch, To from the response (§17.1.1.3)."""
        ack = SipRequest(method="ACK", uri=self.request.uri)
        ack.headers.add("Via", self.request.headers.get("Via") or "")
        for name in ("Route",):
            for value in self.request.headers.get_all(name):
                ack.headers.add(name, value)
        ack.headers.add("From", self.request.headers.get("From") or "")
        ack.headers.add("To", response.headers.get("To") or "")
        ack.headers.add("Call-ID", self.request.call_id)
        ack.headers.add("CSeq", f"{self.request.cseq[0]} ACK")
        ack.headers.add("Max-Forwards", "70")
        return ack.serialize()

    def cancel_timers(self) -> None:
        self.state = State.TERMINATED
        self.deadline = NEVER

    def fire(self, now: float) -> list[Datagram]:
        if now < self.deadline:
            return []
        if self.state in (State.COMPLETED,):
            self.state = State.TERMINATED  # Timer D / K
            self.deadline = NEVER
            return []
        if now >= self._timeout_at:  # Timer B / F
            self.state = State.TERMINATED
            self.deadline = NEVER
            self.on_timeout()
            return []
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            if self.invite:
                self._interval *= 2
            elif self.state == State.PROCEEDING:
                self._interval = T2
            else:
                self._interval = min(self._interval * 2, T2)
            self.deadline = min(now + self._interval, self._timeout_at)
            return [Datagram(self._data, self.address)]
        self.deadline = NEVER
        return []

    @property
    def done(self) -> bool:
        return self.state == State.TERMINATED
