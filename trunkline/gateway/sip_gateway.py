"""The SIP side of the gateway: one UDP socket, transactions, and the life of each call.

Inbound INVITE: 100 Trying at once; the dialled number is looked up and its
route resolved (``calls.routing``); unknown number → 404, draining →
503, unusable SDP → 488, no agent configured → 603. Otherwise 180 Ringing,
the incoming-call webhook is asked when the route says so, the agent
WebSocket is dialled (fallback agent next), an RTP port is bound and 200 OK
carries the SDP answer. CANCEL before the answer ends it with 487. BYE from
either side ends the call; so does the agent's ``stop`` (trunkline sends
BYE). OPTIONS is answered 200. Malformed requests get 400 when a response
can be addressed, and are dropped (and counted) otherwise.

Trunk security: requests from outside ``TRUNKLINE_SIP_TRUSTED_SOURCES`` spend a
per-source budget (``sip.admission``), in-dialog ones too, and are dropped
unanswered beyond it; an INVITE from such a source is challenged (401) before
the number is even looked up, and a wrong password and an unknown user both get
the same 403 — each sent once, statelessly. Requests naming a live dialog must
match its tags (else 481) and come from its far end, a trusted network, or pass
the same digest (``sip.dialog_guard``); a CANCEL must come from its INVITE's
source.
Outbound calls are placed by ``outbound_calls.OutboundCalls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

from trunkline import metrics
from trunkline.calls.call_media import CallMediaFactory
from trunkline.calls.driver import TRANSCRIPT_WAIT_SECONDS, CallCore
from trunkline.calls.flow_events import CallerCanceled, CallerHungUp, Drain, Event
from trunkline.calls.identity_signature import IdentitySigner
from trunkline.calls.incoming_webhook import IncomingCallWebhook
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.calls.live_call import LiveCall, SipAddress, ignore_response, ignore_timeout
from trunkline.calls.owner_channel import ask_owner, owner_id, same_node
from trunkline.calls.owner_notify import PgCallActions
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.calls.records import inbound_call_record, normalise_e164
from trunkline.calls.rejected_calls import RejectedCallRecords
from trunkline.calls.routing import load_inbound_route
from trunkline.calls.shared_lookups import SharedLookups
from trunkline.config import Settings
from trunkline.crypto import derive_key
from trunkline.gateway import probes
from trunkline.gateway.clock import MediaClock
from trunkline.gateway.media import RtpLeg
from trunkline.gateway.outbound_calls import OutboundCalls
from trunkline.gateway.probes import MediaTotals
from trunkline.gateway.recording import RecordingWriter
from trunkline.gateway.rtp.transport import RtpPortAllocator
from trunkline.gateway.sip import dialog_guard
from trunkline.gateway.sip.admission import SourceBudget, is_trusted
from trunkline.gateway.sip.dialog_guard import Dialog, Verdict, cancel_matches, check_in_dialog
from trunkline.gateway.sip.digest import DigestServer
from trunkline.gateway.sip.message import (
    Address,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    check_request,
    parse_message,
    response_to,
)
from trunkline.gateway.sip.sdp import SdpError, answer_sdp, negotiate, parse_sdp
from trunkline.gateway.sip.transaction import (
    NEVER,
    T1,
    ClientTransaction,
    Datagram,
    ServerTransaction,
)
from trunkline.gateway.sip_inbound_leg import SipInboundLeg
from trunkline.services import Services
from trunkline.speech.engines import SpeechEngines
from trunkline.storage.fairness import (
    SIP_LOOKUP_TENANT,
    DatabaseBusy,
    bind_database_tenant,
    database_work,
)
from trunkline.storage.models import Call, HangupReason, PhoneNumber

log = logging.getLogger("trunkline.sip")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
DIGEST_REALM = "trunkline"
USER_AGENT = "trunkline"
TIMER_GRANULARITY = 0.02  # SIP timers due this close together fire in one pass


class _OwnSocket(asyncio.DatagramProtocol):
    """This worker's own SIP port: what arrives is handled by the gateway like the rest."""

    def __init__(self, gateway: SipGateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.gateway.datagram_received(data, addr, via=self.gateway.own_transport)


class SipGateway(asyncio.DatagramProtocol):
    def __init__(
        self,
        services: Services,
        clock: MediaClock,
        ports: RtpPortAllocator,
        media_address: str,
    ) -> None:
        self.services = services
        self.clock = clock
        self.ports = ports
        self.media_address = media_address
        self.transport: asyncio.DatagramTransport | None = None
        self.local_address: SipAddress = ("0.0.0.0", 0)
        self.own_transport: asyncio.DatagramTransport | None = None  # this worker's alone
        self.own_address: SipAddress | None = None
        self._transport_of: dict[tuple[str, str], asyncio.DatagramTransport] = {}
        self._arrived_on: asyncio.DatagramTransport | None = None
        self._server: dict[tuple[str, str], ServerTransaction] = {}
        # Keyed by (branch, method): a CANCEL shares its INVITE's branch (RFC 3261 §17.1.3).
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = NEVER  # when ``_timer`` fires
        self._tasks: set[asyncio.Task[Any]] = set()
        self.malformed_dropped = 0
        self.bad_requests = 0
        self.auth_refused = 0
        self.dialog_refused = dict.fromkeys(dialog_guard.REFUSAL_REASONS, 0)
        settings = services.settings
        self.trusted_networks = settings.trusted_networks()
        self.budget = SourceBudget(settings.sip_unauthenticated_rate)
        self.digest = DigestServer(
            DIGEST_REALM,
            derive_key(services.master_key, "sip digest nonces"),
            nonce_lifetime=settings.sip_nonce_lifetime_seconds,
        )
        self.outbound = OutboundCalls(self)
        self.media_totals = MediaTotals.empty()  # what the bridges of ended calls counted
        self.recordings = RecordingWriter(services.settings.data_dir / "recordings")
        self.speech = SpeechEngines(settings)
        self.lookups = SharedLookups()
        self.core = _call_core(services, self, settings)
        self.calls = self.core.calls  # by the leg's call id (SIP Call-ID)
        self.rejected_calls = RejectedCallRecords(
            services.repository, settings.rejected_call_record_rate, self.spawn, time.monotonic
        )

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, host: str, port: int, *, shared: bool = False) -> SipAddress:
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
            self.own_address = (str(own.get_extra_info("sockname")[0]),
                                int(own.get_extra_info("sockname")[1]))  # fmt: skip
        probes.watch(self)
        # Alone, repair what a crash left first; workers have the supervisor do it.
        await asyncio.to_thread(self.recordings.start, not shared)
        return self.local_address

    def at_capacity(self, organization_id: str) -> bool:
        """True when the organisation already has its maximum of concurrent calls here."""
        return self.core.at_capacity(organization_id)

    def media_snapshot(self) -> MediaTotals:
        """Ended calls' media figures plus the live calls', for a metrics scrape."""
        snapshot = MediaTotals.empty()
        snapshot.add_totals(self.media_totals)
        for call in list(self.calls.values()):
            bridge = call.bridge
            if bridge is not None:
                bridge_totals = (bridge.to_agent, bridge.to_caller, bridge.rtp_counters())
                snapshot.add(bridge.counters(), *bridge_totals)
        return snapshot

    @property
    def busy(self) -> bool:
        """Calls are live, or an ended call's status is still being stored."""
        return bool(self.calls) or self.core.calls_ending > 0

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self.end_call(call, "local", send_bye=True)
        # Calls ended just before (a BYE, the agent's stop) finish storing their end first.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.core.ends_stored.wait(), TRANSCRIPT_WAIT_SECONDS + 5.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()
        if self.own_transport is not None:
            self.own_transport.close()
        probes.unwatch(self)
        await asyncio.to_thread(self.speech.stop)
        await asyncio.to_thread(self.recordings.stop)
        # Recordings finished before or while the writer stopped: publish every one.
        publishing = self.core.media.publishing
        if self._tasks or publishing:
            await asyncio.gather(*self._tasks, *publishing, return_exceptions=True)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not a subclass of asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    # -- sending and timers -----------------------------------------------------------
    def _send(
        self, datagrams: list[Datagram], transport: asyncio.DatagramTransport | None = None
    ) -> None:
        self._transmit(datagrams, transport)
        self._schedule()

    def _transmit(
        self, datagrams: list[Datagram], transport: asyncio.DatagramTransport | None
    ) -> None:
        transport = transport or self.transport
        if transport is not None:
            for datagram in datagrams:
                transport.sendto(datagram.data, datagram.address)

    def _schedule(self) -> None:
        """Make sure the timer fires by the deadline a transaction may just have set.

        A deadline set now is never sooner than now + T1 (the shortest SIP timer), so
        a timer already due by then covers it; otherwise the timer is brought forward
        to now + T1 and ``_fire_timers`` finds the exact next deadline. No scan of
        every transaction per message: with thousands of them (an INVITE flood)
        that cost grew with the square of the flood.
        """
        at = asyncio.get_running_loop().time() + T1
        if self._timer is not None and self._timer_at <= at:
            return
        self._arm_timer(at)

    def _arm_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at != NEVER:
            self._timer = asyncio.get_running_loop().call_at(at, self._fire_timers)
            self._timer_at = at

    def _fire_timers(self) -> None:
        now = asyncio.get_running_loop().time()
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

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receiving ---------------------------------------------------------------------
    def datagram_received(
        self,
        data: bytes,
        addr: tuple[str, int],
        via: asyncio.DatagramTransport | None = None,
    ) -> None:
        """A datagram on the shared SIP port (or, ``via``, on this worker's own port)."""
        self._arrived_on = via
        source = (addr[0], addr[1])
        if not data.strip():
            return  # keep-alive CRLF
        try:
            message = parse_message(data)
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

    def _bad_request(self, request: SipRequest, source: SipAddress, reason: str) -> None:
        self.bad_requests += 1
        if request.method == "ACK" or request.headers.get("Via") is None:
            self.malformed_dropped += 1
            return
        response = response_to(request, 400, f"Bad Request ({reason[:60]})")
        if self.transport is not None:
            self.transport.sendto(response.serialize(), source)

    def _on_request(self, request: SipRequest, source: SipAddress) -> None:
        metrics.SIP_REQUESTS.labels(metrics.sip_method_label(request.method)).inc()
        trusted = is_trusted(source[0], self.trusted_networks)
        if not trusted and not self.budget.admit(source[0], self._now()):
            return  # over its budget, in-dialog requests too: dropped unanswered (and counted)
        branch = request.top_via.branch
        method = "INVITE" if request.method == "ACK" else request.method
        existing = self._server.get((branch, method))
        if existing is not None:
            if source != existing.address:  # a stranger replaying the branch: no reflection
                self._refuse_dialog_request(dialog_guard.FOREIGN_RETRANSMISSION)
                return
            self._send(existing.on_retransmission(request, self._now()))
            return
        call = self.calls.get(request.call_id)
        if request.method == "ACK":
            if call is not None and call.invite_transaction is not None:
                # the ACK for our 2xx (a new branch) to the dialog's latest INVITE,
                # honoured from the far end only
                invite = call.invite_transaction
                verdict = check_in_dialog(request, source, _dialog(call), trusted=trusted)
                if verdict is not Verdict.ACCEPT:
                    self._refuse_dialog_request(dialog_guard.ACK_STRANGER)
                elif request.cseq[0] == invite.request.cseq[0]:
                    self._send(invite.on_retransmission(request, self._now()))
            return
        if request.method == "CANCEL":
            pending = self._server.get((branch, "INVITE"))
            if pending is not None and not cancel_matches(
                request, source, pending.request, pending.address
            ):
                self._refuse_dialog_request(dialog_guard.CANCEL_MISMATCH, request, source, 481)
                return
        elif call is not None:
            verdict = check_in_dialog(request, source, _dialog(call), trusted=trusted)
            if verdict is Verdict.WRONG_TAGS:
                self._refuse_dialog_request(dialog_guard.WRONG_TAGS, request, source, 481)
                return
            if verdict is Verdict.STRANGER:
                self._authenticate_stranger(request, source, call)
                return
        self._serve(request, source, trusted=trusted)

    def _serve(self, request: SipRequest, source: SipAddress, *, trusted: bool) -> None:
        """A request admitted (and, in a dialog, matched to it): its server transaction."""
        branch = request.top_via.branch
        if (branch, request.method) in self._server:
            return  # answered meanwhile (a retransmission that was authenticated too)
        transaction = ServerTransaction(request, self._reply_address(request, source))
        self._server[(branch, request.method)] = transaction
        if self._arrived_on is not None:  # answer from the port the request came to
            self._transport_of[(branch, request.method)] = self._arrived_on
        if request.method == "INVITE":
            transaction.on_timeout = self._ack_timeout
            if request.call_id in self.calls:  # re-INVITE: hold/unhold or refresh
                self._respond(transaction, response_to(request, 100))
                self._reinvite(self.calls[request.call_id], transaction)
                return
            if trusted:  # untrusted sources hear nothing before they authenticate
                self._respond(transaction, response_to(request, 100))
            self.spawn(self._inbound_invite(transaction, source))
        elif request.method == "BYE":
            self._bye(transaction)
        elif request.method == "CANCEL":
            self._cancel(transaction)
        elif request.method == "OPTIONS":
            response = response_to(request, 200, to_tag=secrets.token_hex(6))
            response.headers.add("Allow", ALLOW)
            response.headers.add("Accept", "application/sdp")
            self._respond(transaction, response)
        else:
            response = response_to(request, 405, to_tag=secrets.token_hex(6))
            response.headers.add("Allow", ALLOW)
            self._respond(transaction, response)

    def _refuse_dialog_request(
        self,
        reason: str,
        request: SipRequest | None = None,
        source: SipAddress | None = None,
        status: int | None = None,
        **headers: str,
    ) -> None:
        """Count a refused request; answer it once, without a transaction, when a status is given."""
        self.dialog_refused[reason] += 1
        if request is None or source is None or status is None:
            return
        response = _response_with(request, status, secrets.token_hex(6), headers)
        self._send_once(response, source, self._arrived_on)

    def _send_once(
        self,
        response: SipResponse,
        destination: SipAddress,
        transport: asyncio.DatagramTransport | None = None,
    ) -> None:
        """A response sent statelessly: once, never retransmitted, nothing kept."""
        response.headers.add("Server", USER_AGENT)
        metrics.SIP_RESPONSES.labels(str(response.status)).inc()
        transport = transport or self.transport
        if transport is not None:
            transport.sendto(response.serialize(), destination)

    def _authenticate_stranger(
        self, request: SipRequest, source: SipAddress, call: LiveCall
    ) -> None:
        """An in-dialog request from outside the dialog and the trusted networks: digest, as for
        an INVITE (challenged or refused statelessly), and only then served."""
        if request.headers.get("Authorization") is None:
            challenge = self.digest.challenge(source=source[0])
            self._refuse_dialog_request(
                dialog_guard.STRANGER, request, source, 401, WWW_Authenticate=challenge
            )
            return
        self.spawn(self._serve_if_authenticated(request, source, call, self._arrived_on))

    async def _serve_if_authenticated(
        self,
        request: SipRequest,
        source: SipAddress,
        call: LiveCall,
        arrived_on: asyncio.DatagramTransport | None,
    ) -> None:
        record = call.lifecycle.record
        number = await self.services.repository.get_number(record.phone_number_id)
        verdict = self._digest_verdict(request, number, source[0])
        self._arrived_on = arrived_on  # answered as if it had just arrived (set per datagram)
        if verdict != "ok":
            if verdict == "denied":
                self._refuse_dialog_request(dialog_guard.STRANGER, request, source, 403)
            else:
                challenge = self.digest.challenge(source=source[0], stale=verdict == "stale")
                self._refuse_dialog_request(
                    dialog_guard.STRANGER, request, source, 401, WWW_Authenticate=challenge
                )
            return
        if self.calls.get(request.call_id) is call:
            self._serve(request, source, trusted=False)

    def _reply_address(self, request: SipRequest, source: SipAddress) -> SipAddress:
        """Responses go where the request came from (rport semantics, RFC 3581)."""
        return source

    def _respond(self, transaction: ServerTransaction, response: SipResponse) -> None:
        response.headers.add("Server", USER_AGENT)
        metrics.SIP_RESPONSES.labels(str(response.status)).inc()
        request = transaction.request
        key = (request.top_via.branch, request.method)
        self._send(transaction.respond(response, self._now()), self._transport_of.get(key))

    def _on_response(self, response: SipResponse) -> None:
        try:
            key = (response.top_via.branch, response.cseq[1])
        except SipParseError:
            self.malformed_dropped += 1
            return
        client = self._client.get(key)
        if client is None:
            # A retransmitted 2xx to our INVITE means our ACK was lost: send it again.
            call = self.calls.get(response.call_id)
            if call is not None and call.outbound is not None and 200 <= response.status < 300:
                self.outbound.resend_ack(call)
            return
        self._send(client.on_message(response, self._now()), self._transport_of.get(key))

    # -- in-dialog requests ---------------------------------------------------------------
    def _bye(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        call = self.calls.get(request.call_id)
        if call is None:
            self._respond(transaction, response_to(request, 481))
            return
        self._respond(transaction, response_to(request, 200))
        self.spawn(self.end_call(call, "remote", send_bye=False))

    def _cancel(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        invite = self._server.get((request.top_via.branch, "INVITE"))
        call = self.calls.get(request.call_id)
        if invite is None or call is None or call.answered or call.outbound is not None:
            self._respond(transaction, response_to(request, 481))
            return
        if call.invite_transaction is not invite:  # a re-INVITE: too late to cancel
            self._respond(transaction, response_to(request, 481))
            return
        self._respond(transaction, response_to(request, 200))
        self.core.post(call, CallerCanceled())  # the flow answers the INVITE 487

    def _reinvite(self, call: LiveCall, transaction: ServerTransaction) -> None:
        request = transaction.request
        try:
            negotiated = negotiate(parse_sdp(request.body))
        except SdpError as exc:
            self._respond(transaction, response_to(request, 488, str(exc)[:60]))
            return
        response = response_to(request, 200)
        if call.endpoint is not None:
            leg = call.bridge.caller if call.bridge is not None else None
            if isinstance(leg, RtpLeg) and not negotiated.remote_address.startswith("0.0.0.0"):
                leg.session.remote = (negotiated.remote_address, negotiated.remote_port)
            response.body = answer_sdp(negotiated, self.media_address, call.endpoint.port)
            response.headers.add("Content-Type", "application/sdp")
        response.headers.add("Contact", self.contact())
        if call.answered:  # its ACK, on a branch of its own, is matched through the call
            call.invite_transaction = transaction
        self._respond(transaction, response)

    def _ack_timeout(self, transaction: ServerTransaction) -> None:
        call = self.calls.get(transaction.request.call_id)
        if call is not None and call.answered and not call.ended:
            log.warning("no ACK for 200 OK", extra={"call_id": call.lifecycle.call_id})
            self.spawn(self.end_call(call, "local", send_bye=True))

    @property
    def advertised_address(self) -> SipAddress:
        """Our SIP address as peers should reach it (Via, Contact)."""
        host, port = self.local_address
        return (self.media_address if host in ("0.0.0.0", "::") else host, port)

    @property
    def outbound_address(self) -> SipAddress:
        """Where replies to our outbound dialogs should go: this worker's own port if any."""
        if self.own_address is None:
            return self.advertised_address
        host, port = self.own_address
        return (self.media_address if host in ("0.0.0.0", "::") else host, port)

    def contact(self, *, outbound: bool = False) -> str:
        host, port = self.outbound_address if outbound else self.advertised_address
        return f"<sip:trunkline@{host}:{port}>"

    # -- the inbound call ------------------------------------------------------------------
    async def _inbound_invite(self, transaction: ServerTransaction, source: SipAddress) -> None:
        request = transaction.request
        local_tag = secrets.token_hex(8)

        def reject(status: int, reason: str | None = None, **headers: str) -> None:
            self._respond(transaction, _response_with(request, status, local_tag, headers, reason))

        def reject_once(status: int, **headers: str) -> None:
            """To a source that has not authenticated: once, and the transaction forgotten,
            so nothing is retransmitted to an address that may not have asked."""
            key = (request.top_via.branch, request.method)
            self._server.pop(key, None)
            arrived_on = self._transport_of.pop(key, None)
            response = _response_with(request, status, local_tag, headers)
            self._send_once(response, transaction.address, arrived_on)

        try:
            dialled = normalise_e164(SipUri.parse(request.uri).user)
        except SipParseError:
            dialled = None
        try:
            number = await self._dialled_number(dialled) if dialled else None
        except DatabaseBusy:
            refuse = reject if is_trusted(source[0], self.trusted_networks) else reject_once
            refuse(503, Retry_After="5")
            return
        if number is not None:
            bind_database_tenant(number.organization_id)  # the rest of this call is its work
        if not is_trusted(source[0], self.trusted_networks):
            # Before anything about the number is revealed: unknown numbers, unknown users
            # and wrong passwords all get the same challenge or the same 403.
            verdict = self._digest_verdict(request, number, source[0])
            if verdict != "ok":
                self.auth_refused += 1
                if verdict == "denied":
                    reject_once(403)
                else:
                    challenge = self.digest.challenge(source=source[0], stale=verdict == "stale")
                    reject_once(401, WWW_Authenticate=challenge)
                return
            self._respond(transaction, response_to(request, 100))
        if number is None:
            reject(404)
            return
        if self.services.draining or self.at_capacity(number.organization_id):
            reject(503, Retry_After="30")
            return
        try:
            negotiated = negotiate(parse_sdp(request.body))
        except SdpError as exc:
            reject(488, f"Not Acceptable Here ({str(exc)[:60]})")
            return
        remote_party = Address.parse(request.headers.get("From") or "")
        try:
            route = await self.lookups.run(
                ("route", number.id), lambda: load_inbound_route(self.services.repository, number)
            )
            if route.rejects:
                reject(603)  # answered first; the record follows, within the record rate
                initiated = self._call_record(number, request, remote_party)
                self.rejected_calls.record(number, initiated)
                return
            record = await self._create_call(number, request, remote_party)
        except DatabaseBusy:
            reject(503, Retry_After="5")  # the organisation's database queue is full
            return
        lifecycle = CallLifecycle(
            record, self.services.repository, agent_identity_id=number.agent_identity_id
        )
        call = LiveCall(
            leg_call_id=request.call_id,
            lifecycle=lifecycle,
            invite=request,
            invite_transaction=transaction,
            source=source,
            local_tag=local_tag,
            remote_from=request.headers.get("From") or "",
            local_to=f"{request.headers.get('To')};tag={local_tag}",
            remote_target=self._remote_target(request, source),
            route_set=request.headers.get_all("Record-Route"),
            agent_protocol=number.agent_protocol,
            agent_audio=number.agent_audio,
            recording_enabled=number.recording_enabled,
        )
        call.leg = SipInboundLeg(
            call,
            negotiated,
            respond=self._respond,
            send_bye=self.send_bye,
            ports=self.ports,
            contact=self.contact(),
            media_address=self.media_address,
        )
        await self.core.ring_and_answer(call, route)

    async def _dialled_number(self, dialled: str) -> PhoneNumber | None:
        """The active number an INVITE dialled; INVITEs arriving together share one query."""
        repository = self.services.repository
        with database_work(SIP_LOOKUP_TENANT):
            return await self.lookups.run(
                ("number", dialled), lambda: repository.find_active_number(dialled)
            )

    def _digest_verdict(
        self, request: SipRequest, number: PhoneNumber | None, source_host: str
    ) -> str:
        """ "ok", "stale", "missing" or "denied" for an INVITE from an untrusted source."""
        header = request.headers.get("Authorization")
        if header is None:
            return "missing"
        settings = self.services.settings
        passwords: dict[str, str] = {}
        if settings.sip_trunk_username:
            passwords[settings.sip_trunk_username] = settings.sip_trunk_password
        if number is not None and number.auth_username and number.auth_password_encrypted:
            sealed = number.auth_password_encrypted
            passwords[number.auth_username] = self.services.secret_box.decrypt(sealed)
        return self.digest.verify(
            header, request.method, passwords, uri=request.uri, source=source_host
        )

    def _remote_target(self, request: SipRequest, source: SipAddress) -> SipAddress:
        """Where in-dialog requests go: the Contact's address when it is literal, else the source."""
        contact = request.headers.get("Contact")
        if contact:
            try:
                uri = SipUri.parse(Address.parse(contact).uri)
                ipaddress.ip_address(uri.host)
                return (uri.host, uri.port or 5060)
            except (SipParseError, ValueError):
                pass
        return source

    def _call_record(self, number: PhoneNumber, request: SipRequest, remote_party: Address) -> Call:
        try:
            remote = SipUri.parse(remote_party.uri).user or "anonymous"
        except SipParseError:
            remote = "anonymous"
        return inbound_call_record(number, remote, request.call_id)

    async def _create_call(
        self, number: PhoneNumber, request: SipRequest, remote_party: Address
    ) -> Call:
        record = self._call_record(number, request, remote_party)
        return await self.services.repository.create_call(record)

    # -- ending ------------------------------------------------------------------------------
    async def end_call(self, call: LiveCall, reason: HangupReason, *, send_bye: bool) -> None:
        """A SIP event ends the call: the caller's BYE (``remote``), else ours (``local``)."""
        if reason == "remote" and not send_bye:
            event: Event = CallerHungUp() if call.answered else CallerCanceled()
        else:
            event = Drain()
        await self.core.dispatch(call, event)

    def send_bye(self, call: LiveCall) -> None:
        if call.outbound is not None:
            self.send_request(call.outbound.bye(), call.remote_target, own_port=True)
            return
        call.local_cseq += 1
        bye = SipRequest(method="BYE", uri=_target_uri(call))
        host, port = self.advertised_address
        branch = "z9hG4bK" + secrets.token_hex(10)
        bye.headers.add("Via", f"SIP/2.0/UDP {host}:{port};branch={branch};rport")
        for route in call.route_set:
            bye.headers.add("Route", route)
        bye.headers.add("Max-Forwards", "70")
        bye.headers.add("From", call.local_to)
        bye.headers.add("To", call.remote_from)
        bye.headers.add("Call-ID", call.leg_call_id)
        bye.headers.add("CSeq", f"{call.local_cseq} BYE")
        bye.headers.add("User-Agent", USER_AGENT)
        self.send_request(bye, call.remote_target)

    def send_request(
        self,
        request: SipRequest,
        destination: SipAddress,
        on_response: Callable[[SipResponse], None] = ignore_response,
        on_timeout: Callable[[], None] = ignore_timeout,
        *,
        own_port: bool = False,
    ) -> None:
        """Send a request in a new client transaction (retransmitted until answered).

        ``own_port``: from this worker's own SIP port (outbound dialogs), so the
        replies come back to this process when workers share the SIP port.
        """
        transaction = ClientTransaction(request, destination, on_response, on_timeout)
        key = (request.top_via.branch, request.method)
        self._client[key] = transaction
        transport = self.own_transport if own_port else None
        if transport is not None:
            self._transport_of[key] = transport
        self._send(transaction.start(self._now()), transport)

    # -- API hang-up ---------------------------------------------------------------------
    async def hangup(self, call_id: str) -> bool:
        return await self.core.hangup(call_id)


def _response_with(
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


def _dialog(call: LiveCall) -> Dialog:
    """The call's dialog as the far end names it: our tag, theirs, and where it sends from."""
    if call.outbound is not None:
        remote_tag = call.outbound.remote_tag
    else:
        try:
            remote_tag = Address.parse(call.remote_from).tag
        except SipParseError:
            remote_tag = None
    return Dialog(call.local_tag, remote_tag, frozenset((call.source, call.remote_target)))


def _target_uri(call: LiveCall) -> str:
    contact = call.invite.headers.get("Contact") if call.invite is not None else None
    if contact:
        try:
            return Address.parse(contact).uri
        except SipParseError:
            pass
    host, port = call.remote_target
    return f"sip:{host}:{port}"


def _call_core(services: Services, gateway: SipGateway, settings: Settings) -> CallCore:
    """The call core of this gateway, given what it needs explicitly."""
    wake = services.outbox.wake if services.outbox is not None else _no_wake
    repository = services.repository
    signer = IdentitySigner(repository, services.secret_box)
    publisher = RecordingPublisher(repository, services.blob_store, wake)
    media = CallMediaFactory(
        gateway.clock,
        gateway.recordings,
        gateway.speech,
        gateway.media_totals,
        publisher,
        max_playout_seconds=settings.playout_max_seconds,
    )
    return CallCore(
        repository,
        signer,
        IncomingCallWebhook(repository, signer, services.http, settings),
        media,
        settings,
        wake_outbox=wake,
        spawn=gateway.spawn,
        on_forget=gateway.outbound.forget,
    )


def _no_wake() -> None:
    return None


class GatewayCallControl:
    """What the control API asks of live calls, answered by this process's gateway."""

    def __init__(self, gateway: SipGateway) -> None:
        self.gateway = gateway
        self.remote_owners: PgCallActions | None = None  # processes on other machines

    async def place_call(self, call: Call, number: PhoneNumber) -> None:
        await self.gateway.outbound.place(call, number)

    @property
    def owner(self) -> str:
        return owner_id()

    def readiness(self) -> str | None:
        if self.gateway.transport is None:
            return "SIP socket not bound"
        if self.gateway.ports.free == 0:
            return "at capacity: every RTP port is in use"
        return None

    async def hangup(self, call: Call) -> bool:
        if await self.gateway.hangup(call.id):
            return True
        if not call.owner or call.owner == owner_id():
            return False
        if self.gateway.services.settings.worker_of and same_node(call.owner):
            run_dir = self.gateway.services.settings.data_dir / "run"
            if await ask_owner(run_dir, call.owner, call.id):  # another worker carries it
                return True
        if self.remote_owners is not None:  # another process, perhaps another machine
            return await self.remote_owners.ask_hangup(call.owner, call.id)
        return False
