"""The SIP leg of the gateway: the glue between the SIP endpoint and the life of each call.

``sip.endpoint.SipEndpoint`` carries SIP itself (sockets, admission budget,
transactions, timers, OPTIONS, 400s); ``sip_requests.SipRequests`` matches
what it hands on to the live calls (BYE, CANCEL, re-INVITE, strangers' digest)
and starts the inbound call flow here for a new INVITE. Each inbound dialog's
messages are built by ``sip.dialog.InboundDialog``.

Inbound INVITE: 100 Trying at once; the dialled number is looked up and its
route resolved (``calls.routing``); unknown number → 404, draining →
503, unusable SDP → 488, no agent configured → 603. Otherwise 180 Ringing,
the incoming-call webhook is asked when the route says so, the agent
WebSocket is dialled (fallback agent next), an RTP port is bound and 200 OK
carries the SDP answer. CANCEL before the answer ends it with 487. BYE from
either side ends the call; so does the agent's ``stop`` (trunkline sends
BYE).

Trunk security: an INVITE from outside ``TRUNKLINE_SIP_TRUSTED_SOURCES`` is
challenged (401) before the number is even looked up, and a wrong password and
an unknown user both get the same 403 — each sent once, statelessly
(``sip.trunk_auth``).
Outbound calls are placed by ``outbound_calls.OutboundCalls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any

from trunkline.calls.driver import TRANSCRIPT_WAIT_SECONDS
from trunkline.calls.flow_events import CallerCanceled, CallerHungUp, Drain, Event
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.calls.live_call import LiveCall, SipAddress
from trunkline.calls.records import inbound_call_record, normalise_e164
from trunkline.calls.rejected_calls import RejectedCallRecords
from trunkline.calls.routing import load_inbound_route
from trunkline.calls.shared_lookups import SharedLookups
from trunkline.crypto import derive_key
from trunkline.gateway import collector
from trunkline.gateway.call_core_setup import build_call_core
from trunkline.gateway.outbound_calls import OutboundCalls
from trunkline.gateway.rtp.transport import RtpPortAllocator
from trunkline.gateway.sip.admission import Network, SourceBudget, is_trusted
from trunkline.gateway.sip.dialog import InboundDialog
from trunkline.gateway.sip.digest import DigestServer
from trunkline.gateway.sip.endpoint import (
    SipEndpoint,
    ignore_response,
    ignore_timeout,
)
from trunkline.gateway.sip.message import (
    Address,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    response_to,
)
from trunkline.gateway.sip.sdp import SdpError, negotiate, parse_sdp
from trunkline.gateway.sip.transaction import ServerTransaction
from trunkline.gateway.sip.trunk_auth import Passwords, TrunkAuth
from trunkline.gateway.sip_inbound_leg import SipInboundLeg
from trunkline.gateway.sip_requests import SipRequests
from trunkline.media.clock import MediaClock
from trunkline.media.counters import MediaTotals
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.recording import RecordingWriter
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
DIGEST_REALM = "trunkline"


class SipGateway:
    """The SIP leg: its endpoint and request handling, and the calls it carries (flow below)."""

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
        settings = services.settings
        self.requests = SipRequests(self, self._inbound_invite)
        self.endpoint = SipEndpoint(
            self.requests,
            settings.sip.trusted_sources,
            SourceBudget(settings.sip.unauthenticated_rate),
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self.trunk_auth = TrunkAuth(
            DigestServer(
                DIGEST_REALM,
                derive_key(services.master_key, "sip digest nonces"),
                nonce_lifetime=settings.sip.nonce_lifetime_seconds,
            )
        )
        self.outbound = OutboundCalls(self)
        self.media_totals = MediaTotals.empty()  # what the bridges of ended calls counted
        self.recordings = RecordingWriter(services.settings.data_dir / "recordings")
        self.speech = SpeechEngines(settings)
        self.media = MediaSessionFactory(
            clock,
            recordings=self.recordings,
            speech=self.speech,
            totals=self.media_totals,
            max_playout_seconds=settings.media.playout_max_seconds,
        )
        self.lookups = SharedLookups()
        self.core = build_call_core(
            services,
            self.media,
            spawn=self.spawn,
            on_forget=self.outbound.forget,
        )
        self.calls = self.core.calls  # by the leg's call id (SIP Call-ID)
        self.rejected_calls = RejectedCallRecords(
            services.repository,
            settings.calls.rejected_call_record_rate,
            self.spawn,
            time.monotonic,
        )

    # -- the endpoint's state, as metrics, probes and the outbound calls read it ---------
    @property
    def transport(self) -> asyncio.DatagramTransport | None:
        return self.endpoint.transport

    @property
    def own_transport(self) -> asyncio.DatagramTransport | None:
        return self.endpoint.own_transport

    @property
    def local_address(self) -> SipAddress:
        return self.endpoint.local_address

    @property
    def own_address(self) -> SipAddress | None:
        return self.endpoint.own_address

    @property
    def malformed_dropped(self) -> int:
        return self.endpoint.malformed_dropped

    @property
    def bad_requests(self) -> int:
        return self.endpoint.bad_requests

    @property
    def dialog_refused(self) -> dict[str, int]:
        return self.endpoint.dialog_refused

    @property
    def digest(self) -> DigestServer:
        return self.trunk_auth.digest

    @property
    def auth_refused(self) -> int:
        return self.trunk_auth.refused

    @property
    def trusted_networks(self) -> Sequence[Network]:
        return self.endpoint.trusted_networks

    @trusted_networks.setter
    def trusted_networks(self, networks: Sequence[Network]) -> None:
        self.endpoint.trusted_networks = networks

    @property
    def budget(self) -> SourceBudget:
        return self.endpoint.budget

    @budget.setter
    def budget(self, budget: SourceBudget) -> None:
        self.endpoint.budget = budget

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, host: str, port: int, *, shared: bool = False) -> SipAddress:
        """Bind SIP (``shared``: with other workers, see ``SipEndpoint.bind``)."""
        await self.endpoint.bind(host, port, shared=shared)
        collector.watch(self)
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
        self.endpoint.close()
        collector.unwatch(self)
        await asyncio.to_thread(self.speech.stop)
        await asyncio.to_thread(self.recordings.stop)
        # Recordings finished before or while the writer stopped: publish every one.
        publishing = self.core.media.publishing
        if self._tasks or publishing:
            await asyncio.gather(*self._tasks, *publishing, return_exceptions=True)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _respond(self, transaction: ServerTransaction, response: SipResponse) -> None:
        self.endpoint.respond(transaction, response)

    def send_request(
        self,
        request: SipRequest,
        destination: SipAddress,
        on_response: Callable[[SipResponse], None] = ignore_response,
        on_timeout: Callable[[], None] = ignore_timeout,
        *,
        own_port: bool = False,
    ) -> None:
        """Send a request in a new client transaction (see ``SipEndpoint.send_request``)."""
        self.endpoint.send_request(request, destination, on_response, on_timeout, own_port=own_port)

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
        dialog = InboundDialog.accept(transaction, source)

        def reject(status: int, reason: str | None = None, **headers: str) -> None:
            self._respond(transaction, dialog.reject(status, reason, **headers))

        def reject_once(status: int, **headers: str) -> None:
            """To a source that has not authenticated: once, and the transaction forgotten,
            so nothing is retransmitted to an address that may not have asked."""
            arrived_on = self.endpoint.forget(transaction)
            self.endpoint.send_once(
                dialog.reject(status, **headers), transaction.address, arrived_on
            )

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
            passwords = partial(self.trunk_passwords, number)
            refusal = self.trunk_auth.check_invite(request, passwords, source[0])
            if refusal is not None:
                reject_once(refusal.status, **refusal.headers)
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
            dialog=dialog,
            agent_protocol=number.agent_protocol,
            agent_audio=number.agent_audio,
            recording_enabled=number.recording_enabled,
        )
        call.leg = SipInboundLeg(
            dialog,
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

    def trunk_passwords(self, number: PhoneNumber | None) -> Passwords:
        """Who an untrusted source may authenticate as: the trunk user, the number's own."""
        settings = self.services.settings
        passwords: Passwords = {}
        if settings.sip.trunk_username:
            passwords[settings.sip.trunk_username] = settings.sip.trunk_password
        if number is not None and number.auth_username and number.auth_password_encrypted:
            sealed = number.auth_password_encrypted
            passwords[number.auth_username] = self.services.secret_box.decrypt(sealed)
        return passwords

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
            self.send_request(call.outbound.bye(), call.outbound.destination, own_port=True)
        elif call.dialog is not None:
            dialog = call.dialog
            self.send_request(dialog.bye(self.advertised_address), dialog.remote_target)

    # -- API hang-up ---------------------------------------------------------------------
    async def hangup(self, call_id: str) -> bool:
        return await self.core.hangup(call_id)
