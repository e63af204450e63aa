"""The SIP endpoint: the UDP sockets, the transaction layer and its timers, and nothing of calls.

``SipEndpoint`` receives every datagram on the SIP port (and, when workers
share that port, on this worker's own port, whose replies must come back to
this process). It ignores keep-alives, counts and drops what does not parse,
answers 400 to requests it can address, admits requests by source (trusted
carrier networks, else a per-source budget), absorbs retransmissions into their
server transactions (keyed as RFC 3261 §17.2.3 says, ``transaction.server_key``), routes responses to client transactions, retransmits on
the SIP timers, and answers OPTIONS and unsupported methods itself. OPTIONS is
200 while the process takes calls and 503 with ``Retry-After`` once it does not
(``available`` says which): a SIP load balancer probing with OPTIONS (Kamailio's
dispatcher) then sends new calls elsewhere while the calls here go on.

Messages framed on TCP and TLS connections (``streams.SipStreams``) come in
the same way, with their ``SipStreams`` as the transport they arrived on: what
answers them goes back on their connection, and their transactions are
reliable (nothing retransmitted).

Everything that needs to know about calls goes to its ``SipApplication``: a
new request is offered to ``on_request`` (which matches it to its dialog and
then ``serve``s or ``refuse``s it), and a served INVITE, BYE or CANCEL comes
back to ``on_invite``, ``on_bye`` or ``on_cancel`` with its server transaction.
Time comes from ``now`` (the loop's clock unless one is given), so the timer
logic runs under a fake clock in tests.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import cast

from trunkline import metrics
from trunkline.gateway.sip import dialog_guard, request_rules
from trunkline.gateway.sip.admission import Network, SourceBudget, is_trusted
from trunkline.gateway.sip.application import SipAddress, SipApplication, Transport
from trunkline.gateway.sip.dialog import response_with
from trunkline.gateway.sip.message import (
    REASONS,
    MalformedRequest,
    SipRequest,
    SipResponse,
    check_request,
    parse_message,
    response_to,
)
from trunkline.gateway.sip.parse_error import SipParseError
from trunkline.gateway.sip.streams import SipStreams
from trunkline.gateway.sip.transaction import (
    NEVER,
    T1,
    ClientTransaction,
    Datagram,
    ServerTransaction,
    TransactionKey,
    server_key,
    to_tag_of,
)

log = logging.getLogger("trunkline.sip")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
USER_AGENT = "trunkline"
TIMER_GRANULARITY = 0.02  # SIP timers due this close together fire in one pass
UNAVAILABLE_RETRY_AFTER = "30"  # seconds, on the 503 to OPTIONS while no calls are taken


def ignore_response(response: SipResponse) -> None:
    return None


def ignore_timeout() -> None:
    return None


class _OwnSocket(asyncio.DatagramProtocol):
    """This worker's own SIP port: what arrives is handled like the rest."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.endpoint.datagram_received(data, addr, via=self.endpoint.own_transport)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _always() -> bool:
    return True


class SipEndpoint(asyncio.DatagramProtocol):
    """SIP over UDP for one process: sockets, admission, transactions, timers."""

    def __init__(
        self,
        application: SipApplication,
        trusted_networks: Sequence[Network],
        budget: SourceBudget,
        *,
        now: Callable[[], float] = _loop_time,
        available: Callable[[], bool] = _always,
    ) -> None:
        self.application = application
        self.available = available  # False: draining, OPTIONS is answered 503
        self.trusted_networks = trusted_networks
        self.budget = budget
        self.now = now
        self.transport: asyncio.DatagramTransport | None = None
        self.local_address: SipAddress = ("0.0.0.0", 0)
        self.own_transport: asyncio.DatagramTransport | None = None  # this worker's alone
        self.own_address: SipAddress | None = None
        self._transport_of: dict[TransactionKey, Transport] = {}
        self.arrived_on: Transport | None = None  # the own port, for the datagram being handled
        self._server: dict[TransactionKey, ServerTransaction] = {}
        # Keyed by (branch, method): a CANCEL shares its INVITE's branch (RFC 3261 §17.1.3).
        self._client: dict[TransactionKey, ClientTransaction] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = NEVER  # when ``_timer`` fires
        self.malformed_dropped = 0
        self.bad_requests = 0
        # Requests refused by reason: dialog trust (sip.dialog_guard) and what cannot be
        # served at all (sip.request_rules).
        self.dialog_refused = dict.fromkeys(
            (*dialog_guard.REFUSAL_REASONS, *request_rules.REFUSAL_REASONS), 0
        )

    # -- sockets -------------------------------------------------------------------------
    async def bind(self, host: str, port: int, *, shared: bool = False) -> SipAddress:
        """Bind SIP. ``shared``: one of several workers on the port (SO_REUSEPORT); then
        outbound dialogs get a port of this worker's own so replies come back here."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(host, port), reuse_port=shared or None
        )
        self.transport = transport  # uvloop calls connection_made only on the next loop turn
        sockname = self.transport.get_extra_info("sockname")
        self.local_address = (str(sockname[0]), int(sockname[1]))
        if shared:
            own, _ = await loop.create_datagram_endpoint(
                lambda: _OwnSocket(self), local_addr=(host, 0)
            )
            self.own_transport = own
            own_name = own.get_extra_info("sockname")
            self.own_address = (str(own_name[0]), int(own_name[1]))
        return self.local_address

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()
        if self.own_transport is not None:
            self.own_transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not a subclass of asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    # -- receiving -----------------------------------------------------------------------
    def datagram_received(
        self, data: bytes, addr: tuple[str, int], via: Transport | None = None
    ) -> None:
        """A datagram on the shared SIP port (or, ``via``, on this worker's own port), or a
        message framed on a TCP or TLS connection (``via`` its ``SipStreams``)."""
        self.arrived_on = via
        source = (addr[0], addr[1])
        if not data.strip():
            return  # keep-alive CRLF
        try:
            message = parse_message(data)
        except MalformedRequest as exc:  # answerable: 400 (505 for the version)
            self._bad_request(exc.request, source, str(exc), exc.status)
            return
        except SipParseError as exc:
            self.malformed_dropped += 1
            log.debug("malformed SIP from %s: %s", source, exc)
            return
        if isinstance(message, SipResponse):
            self._on_response(message)
            return
        try:
            check_request(message)
        except SipParseError as exc:
            self._bad_request(message, source, str(exc))
            return
        self._on_request(message, source)

    def _bad_request(
        self, request: SipRequest, source: SipAddress, reason: str, status: int = 400
    ) -> None:
        """Answer a malformed request once, statelessly, where its Via lets the answer be
        routed (never an ACK); otherwise drop it. Counted either way."""
        self.bad_requests += 1
        if request.method == "ACK" or request.headers.get("Via") is None:
            self.malformed_dropped += 1
            return
        phrase = REASONS[status]  # a request rule's reason is a whole phrase already
        phrase = reason[:80] if reason.startswith(phrase) else f"{phrase} ({reason[:60]})"
        response = response_to(request, status, phrase)
        transport = self.arrived_on or self.transport
        if transport is not None:
            transport.sendto(response.serialize(), source)

    def _on_request(self, request: SipRequest, source: SipAddress) -> None:
        metrics.SIP_REQUESTS.labels(metrics.sip_method_label(request.method)).inc()
        trusted = is_trusted(source[0], self.trusted_networks)
        if not trusted and not self.budget.admit(source[0], self.now()):
            return  # over its budget, in-dialog requests too: dropped unanswered (and counted)
        existing = self._server_of(request)
        if existing is not None:
            if source != existing.address:  # a stranger replaying the branch: no reflection
                self.refuse(dialog_guard.FOREIGN_RETRANSMISSION)
                return
            self._send(existing.on_retransmission(request, self.now()))
            return
        refusal = request_rules.refusal_for(request)
        if refusal is None:
            self.application.on_request(request, source, trusted=trusted, via=self.arrived_on)
        elif refusal.counted_as == request_rules.BAD_REQUEST:
            self._bad_request(request, source, refusal.reason or "")
        else:
            self.refuse(
                refusal.counted_as, request, source, refusal.status, via=self.arrived_on,
                **refusal.headers,
            )  # fmt: skip

    def serve_ack(self, invite: ServerTransaction, ack: SipRequest) -> None:
        """The ACK of a 2xx (a branch of its own), matched to its INVITE through the dialog."""
        self._send(invite.on_retransmission(ack, self.now()))

    def _server_of(self, request: SipRequest) -> ServerTransaction | None:
        """The server transaction ``request`` is a retransmission (or the ACK) of, if any."""
        key = server_key(request)
        found = self._server.get(key)
        if found is None and request.method == "ACK" and key[0] == "2543":
            # An RFC 2543 ACK carries the To tag of the response it acknowledges.
            invite = self._server.get(server_key(request, to_tag=""))
            if invite is not None and invite.final_to_tag == to_tag_of(request):
                found = invite
        return found

    def pending_invite(self, cancel: SipRequest) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL names (RFC 3261 §9.2), if any."""
        return self._server.get(server_key(cancel, method="INVITE"))

    def serve(
        self, request: SipRequest, source: SipAddress, *, trusted: bool, via: Transport | None
    ) -> None:
        """A request admitted (and, in a dialog, matched to it): its server transaction."""
        key = server_key(request)
        if key in self._server:
            return  # answered meanwhile (a retransmission that was authenticated too)
        # rport semantics (RFC 3581); nothing retransmitted over TCP or TLS
        transaction = ServerTransaction(request, source, reliable=is_reliable(via))
        self._server[key] = transaction
        if via is not None:  # answer from the port the request came to
            self._transport_of[key] = via
        if request.method == "INVITE":
            transaction.on_timeout = self.application.on_ack_timeout
            self.application.on_invite(transaction, source, trusted)
        elif request.method == "BYE":
            self.application.on_bye(transaction)
        elif request.method == "CANCEL":
            self.application.on_cancel(transaction)
        elif request.method == "OPTIONS":
            status = 200 if self.available() else 503
            response = response_to(request, status, to_tag=secrets.token_hex(6))
            if status == 503:
                response.headers.add("Retry-After", UNAVAILABLE_RETRY_AFTER)
            response.headers.add("Allow", ALLOW)
            response.headers.add("Accept", "application/sdp")
            self.respond(transaction, response)
        else:
            response = response_to(request, 405, to_tag=secrets.token_hex(6))
            response.headers.add("Allow", ALLOW)
            self.respond(transaction, response)

    def forget(self, transaction: ServerTransaction) -> Transport | None:
        """Drop a server transaction unanswered; the port its request came to, if it was ours."""
        key = server_key(transaction.request)
        self._server.pop(key, None)
        return self._transport_of.pop(key, None)

    def _on_response(self, response: SipResponse) -> None:
        try:
            key = (response.top_via.branch, response.cseq[1])
        except SipParseError:
            self.malformed_dropped += 1
            return
        client = self._client.get(key)
        if client is None:
            self.application.on_stray_response(response)
            return
        self._send(client.on_message(response, self.now()), self._transport_of.get(key))

    # -- sending -------------------------------------------------------------------------
    def respond(self, transaction: ServerTransaction, response: SipResponse) -> None:
        """A response in its server transaction (retransmitted as the transaction says)."""
        response.headers.add("Server", USER_AGENT)
        metrics.SIP_RESPONSES.labels(str(response.status)).inc()
        key = server_key(transaction.request)
        self._send(transaction.respond(response, self.now()), self._transport_of.get(key))

    def send_once(
        self, response: SipResponse, destination: SipAddress, via: Transport | None = None
    ) -> None:
        """A response sent statelessly: once, never retransmitted, nothing kept."""
        response.headers.add("Server", USER_AGENT)
        metrics.SIP_RESPONSES.labels(str(response.status)).inc()
        transport = via or self.transport
        if transport is not None:
            transport.sendto(response.serialize(), destination)

    def refuse(
        self,
        reason: str,
        request: SipRequest | None = None,
        source: SipAddress | None = None,
        status: int | None = None,
        *,
        via: Transport | None = None,
        **headers: str,
    ) -> None:
        """Count a refused request; answer it once, without a transaction, when a status is given."""
        self.dialog_refused[reason] += 1
        if request is None or source is None or status is None:
            return
        response = response_with(request, status, secrets.token_hex(6), headers)
        self.send_once(response, source, via)

    def send_request(
        self,
        request: SipRequest,
        destination: SipAddress,
        on_response: Callable[[SipResponse], None] = ignore_response,
        on_timeout: Callable[[], None] = ignore_timeout,
        *,
        own_port: bool = False,
        transport: Transport | None = None,
    ) -> None:
        """Send a request in a new client transaction (retransmitted until answered).

        ``own_port``: from this worker's own SIP port (outbound dialogs), so the
        replies come back to this process when workers share the SIP port.
        ``transport``: on these TCP or TLS connections instead (not retransmitted).
        """
        reliable = is_reliable(transport)
        transaction = ClientTransaction(
            request, destination, on_response, on_timeout, reliable=reliable
        )
        key = (request.top_via.branch, request.method)
        self._client[key] = transaction
        if transport is None and own_port:
            transport = self.own_transport
        if transport is not None:
            self._transport_of[key] = transport
        self._send(transaction.start(self.now()), transport)

    def _send(self, datagrams: list[Datagram], transport: Transport | None = None) -> None:
        self._transmit(datagrams, transport)
        self._schedule()

    def _transmit(self, datagrams: list[Datagram], transport: Transport | None) -> None:
        transport = transport or self.transport
        if transport is not None:
            for datagram in datagrams:
                transport.sendto(datagram.data, datagram.address)

    # -- timers --------------------------------------------------------------------------
    def _schedule(self) -> None:
        """Make sure the timer fires by the deadline a transaction may just have set.

        A deadline set now is never sooner than now + T1 (the shortest SIP timer), so
        a timer already due by then covers it; otherwise the timer is brought forward
        to now + T1 and ``fire_timers`` finds the exact next deadline. No scan of
        every transaction per message: with thousands of them (an INVITE flood)
        that cost grew with the square of the flood.
        """
        at = self.now() + T1
        if self._timer is not None and self._timer_at <= at:
            return
        self._arm_timer(at)

    def _arm_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at != NEVER:
            delay = max(0.0, at - self.now())
            self._timer = asyncio.get_running_loop().call_later(delay, self.fire_timers)
            self._timer_at = at

    @property
    def timer_at(self) -> float:
        """When the transaction timer fires next (``NEVER`` when nothing is pending)."""
        return self._timer_at if self._timer is not None else NEVER

    def fire_timers(self) -> None:
        """Run every transaction timer that is due, and arm the timer for the next one."""
        now = self.now()
        self._timer = None
        soonest = NEVER
        for key, server in list(self._server.items()):
            if server.deadline <= now:
                self._transmit(server.fire(now), self._transport_of.get(key))
            if server.state.value == "terminated":
                del self._server[key]
                self._transport_of.pop(key, None)
            else:
                soonest = min(soonest, server.deadline)
        for key, client in list(self._client.items()):
            if client.deadline <= now:
                self._transmit(client.fire(now), self._transport_of.get(key))
            if client.done:
                del self._client[key]
                self._transport_of.pop(key, None)
            else:
                soonest = min(soonest, client.deadline)
        # Deadlines a few milliseconds apart share one pass over the transactions.
        at = soonest if soonest == NEVER else max(soonest, now + TIMER_GRANULARITY)
        if self._timer is not None:  # armed by a timeout handler during the pass
            at = min(at, self._timer_at)
        self._arm_timer(at)

    def transport_of(self, transaction: ServerTransaction) -> Transport | None:
        """The transport a served request came on, when not the shared UDP port."""
        return self._transport_of.get(server_key(transaction.request))

    @property
    def transactions(self) -> int:
        """Server and client transactions still kept (answered ones until their timers end)."""
        return len(self._server) + len(self._client)


def is_reliable(transport: Transport | None) -> bool:
    """Whether messages on ``transport`` arrive without retransmission (TCP, TLS)."""
    return isinstance(transport, SipStreams)


def transport_name(transport: Transport | None) -> str:
    """What a message came over: "TCP" or "TLS" for a stream, else "UDP"."""
    return transport.name if isinstance(transport, SipStreams) else "UDP"
