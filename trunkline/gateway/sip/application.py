"""What the SIP endpoint hands on: the interface between SIP transactions and calls.

``SipEndpoint`` knows sockets, admission and transactions and nothing of calls;
whatever needs to know about calls implements ``SipApplication``. A new
request is offered to ``on_request`` (matched to its dialog, then served or
refused through the endpoint), and a served INVITE, BYE or CANCEL comes back
with its server transaction.
"""

from __future__ import annotations

from typing import Protocol

from trunkline.gateway.sip.message import SipRequest, SipResponse
from trunkline.gateway.sip.transaction import ServerTransaction

SipAddress = tuple[str, int]


class Transport(Protocol):
    """Where a message goes out: a UDP socket, or the stream connections (TCP, TLS)."""

    def sendto(self, data: bytes, addr: SipAddress | None = None, /) -> None: ...


class SipApplication(Protocol):
    """What the endpoint hands on: requests that need to know about calls."""

    def on_request(
        self, request: SipRequest, source: SipAddress, *, trusted: bool, via: Transport | None
    ) -> None:
        """An admitted request that is no retransmission (an ACK for a 2xx included):
        match it to its dialog, then ``serve`` or ``refuse`` it (or drop an ACK)."""
        ...

    def on_invite(self, transaction: ServerTransaction, source: SipAddress, trusted: bool) -> None:
        """A served INVITE: a new call, or a re-INVITE of a live one."""
        ...

    def on_bye(self, transaction: ServerTransaction) -> None: ...

    def on_cancel(self, transaction: ServerTransaction) -> None: ...

    def on_ack_timeout(self, transaction: ServerTransaction) -> None:
        """Timer H: the final response to an INVITE was never acknowledged."""
        ...

    def on_stray_response(self, response: SipResponse) -> None:
        """A response no client transaction is waiting for (a retransmitted 2xx, say)."""
        ...
