"""The SIP leg of the gateway: the glue between the SIP endpoint and the life of each call.

``sip.endpoint.SipEndpoint`` carries SIP itself (sockets, admission budget,
transactions, timers, OPTIONS, 400s); ``sip_requests.SipRequests`` matches
what it hands on to the live calls (BYE, CANCEL, re-INVITE, strangers' digest)
and starts the inbound call flow here for a new INVITE. Each inbound dialog's
messages are built by ``sip.dialog.InboundDialog``.

Inbound INVITE: 100 Trying at once; the dialled number is looked up and its
route resolved (``control_api.routing``); unknown number → 404, draining →
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
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from trunkline import metrics
from trunkline.agent.formats import AGENT_FORMATS
from trunkline.agent.link import AgentConnectError, AgentLink, connect_agent
from trunkline.control_api.routing import RouteTarget, load_inbound_route
from trunkline.crypto import derive_key
from trunkline.gateway import collector
from trunkline.gateway.call_lifecycle import CallLifecycle
from trunkline.gateway.live_call import LiveCall, SipAddress
from trunkline.gateway.outbound_calls import OutboundCalls
from trunkline.gateway.owner_channel import ask_owner, owner_id, same_node
from trunkline.gateway.owner_notify import PgCallActions
from trunkline.gateway.recording_publish import publish_recording
from trunkline.gateway.rejected_calls import RejectedCallRecords
from trunkline.gateway.rtp.leg import RtpLeg
from trunkline.gateway.rtp.transport import PortsExhausted, RtpEndpoint, RtpPortAllocator
from trunkline.gateway.shared_lookups import SharedLookups
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
from trunkline.gateway.sip.sdp import Negotiated, SdpError, answer_sdp, negotiate, parse_sdp
from trunkline.gateway.sip.transaction import ServerTransaction
from trunkline.gateway.sip.trunk_auth import Passwords, TrunkAuth
from trunkline.gateway.sip_requests import SipRequests
from trunkline.gateway.transcripts import store_transcript_segment
from trunkline.gateway.voicemail import start_voicemail
from trunkline.media.clock import MediaClock
from trunkline.media.counters import MediaTotals
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.plan import MediaPlan
from trunkline.media.recording import RecordingWriter
from trunkline.media.session import MediaSession
from trunkline.media.speech_work import Party
from trunkline.services import Services
from trunkline.speech.engines import SpeechEngines
from trunkline.storage.fairness import (
    SIP_LOOKUP_TENANT,
    DatabaseBusy,
    bind_database_tenant,
    database_work,
)
from trunkline.storage.models import Call, HangupReason, PhoneNumber, utcnow
from trunkline.webhooks.signing import sign_headers
from trunkline.webhooks.ssrf import UnsafeTarget, check_url_literal

log = logging.getLogger("trunkline.sip")
DIGEST_REALM = "trunkline"
AGENT_CONNECT_SECONDS = 5.0
TRANSCRIPT_WAIT_SECONDS = 15.0  # at hang-up, for the last utterances to be transcribed
INCOMING_WEBHOOK_SECONDS = 5.0


class CallDeclined(Exception):
    """The incoming-call webhook answered ``{"action": "reject"}``."""


def normalise_e164(user: str | None) -> str | None:
    """The dialled number as E.164 (+ and digits), or None when it is not a phone number."""
    if not user:
        return None
    digits = "".join(c for c in user if c.isdigit())
    if not 6 <= len(digits) <= 15:
        return None
    if user.startswith("+"):
        return "+" + digits
    if len(digits) == 10:
        return "+1" + digits  # a national NANP number, as US carriers send them
    return "+" + digits


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
            settings.trusted_networks(),
            SourceBudget(settings.sip_unauthenticated_rate),
        )
        self.calls: dict[str, LiveCall] = {}  # by SIP Call-ID
        self._tasks: set[asyncio.Task[None]] = set()
        # Recordings being published: never cancelled, ``close`` waits for them.
        self._publishing: set[asyncio.Task[None]] = set()
        self.calls_ending = 0  # left ``calls``, still storing their end (status, transcript)
        self._ends_stored = asyncio.Event()  # set while ``calls_ending`` is 0
        self._ends_stored.set()
        self.trunk_auth = TrunkAuth(
            DigestServer(
                DIGEST_REALM,
                derive_key(services.master_key, "sip digest nonces"),
                nonce_lifetime=settings.sip_nonce_lifetime_seconds,
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
            max_playout_seconds=settings.playout_max_seconds,
        )
        self.lookups = SharedLookups()
        self.rejected_calls = RejectedCallRecords(
            services.repository, settings.rejected_call_record_rate, self.spawn, time.monotonic
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
    def trusted_networks(self) -> list[Network]:
        return self.endpoint.trusted_networks

    @trusted_networks.setter
    def trusted_networks(self, networks: list[Network]) -> None:
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
        limit = self.services.settings.max_calls_per_org
        if not limit:
            return False
        live = sum(
            1
            for call in self.calls.values()
            if not call.ended and call.lifecycle.record.organization_id == organization_id
        )
        return live >= limit

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
        return bool(self.calls) or self.calls_ending > 0

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self.end_call(call, "local", send_bye=True)
        # Calls ended just before (a BYE, the agent's stop) finish storing their end first.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ends_stored.wait(), TRANSCRIPT_WAIT_SECONDS + 5.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.endpoint.close()
        collector.unwatch(self)
        await asyncio.to_thread(self.speech.stop)
        await asyncio.to_thread(self.recordings.stop)
        # Recordings finished before or while the writer stopped: publish every one.
        if self._tasks or self._publishing:
            await asyncio.gather(*self._tasks, *self._publishing, return_exceptions=True)

    def spawn(self, coroutine: Any) -> None:
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
            sip_call_id=request.call_id,
            lifecycle=lifecycle,
            dialog=dialog,
            agent_protocol=number.agent_protocol,
            agent_audio=number.agent_audio,
            recording_enabled=number.recording_enabled,
        )
        self.calls[request.call_id] = call
        try:
            await self._ring_and_answer(
                call, number, route.targets, negotiated, route.voicemail_message
            )
        except Exception:
            log.exception("inbound call failed", extra={"call_id": record.id})
            if not call.answered:
                reject(500)
            await self.end_call(call, "local", send_bye=call.answered)

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
        if settings.sip_trunk_username:
            passwords[settings.sip_trunk_username] = settings.sip_trunk_password
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

    async def _ring_and_answer(
        self,
        call: LiveCall,
        number: PhoneNumber,
        targets: tuple[RouteTarget, ...],
        negotiated: Negotiated,
        voicemail_message: str | None = None,
    ) -> None:
        dialog = call.dialog
        assert dialog is not None
        transaction = dialog.transaction
        self._respond(transaction, dialog.provisional(180))
        await call.lifecycle.transition("ringing")
        link: AgentLink | None = None
        url: str | None = None
        for target in targets:
            if call.canceled:
                break
            try:
                url = await self.agent_url(call, number, target)
            except CallDeclined:
                self._respond(transaction, dialog.reject(603))
                await call.lifecycle.transition(
                    "failed", hangup_reason="rejected", detail="declined by webhook"
                )
                self.calls.pop(call.sip_call_id, None)
                return
            if url is None:
                continue
            link = await self.dial_agent(call, url)
            if link is not None:
                break
        if call.canceled:
            if link is not None:
                link.close(1000, "canceled")
            await call.lifecycle.transition("canceled", hangup_reason="remote")
            self.calls.pop(call.sip_call_id, None)
            return
        if link is None and voicemail_message is not None:
            call.voicemail = True
        elif link is None:
            self._respond(transaction, dialog.reject(480, "Agent Unavailable"))
            await call.lifecycle.transition(
                "failed", hangup_reason="rejected", detail="agent unreachable"
            )
            self.calls.pop(call.sip_call_id, None)
            return
        try:
            endpoint = await self.ports.open()
        except PortsExhausted:
            if link is not None:
                link.close(1011, "no media port")
            # at capacity: every RTP port is in use
            self._respond(transaction, dialog.reject(503, Retry_After="30"))
            await call.lifecycle.transition("failed", hangup_reason="rejected", detail="no port")
            self.calls.pop(call.sip_call_id, None)
            return
        call.endpoint = endpoint
        bridge = self.bridge_media(call, link, negotiated, endpoint)
        ok = dialog.answer(
            answer_sdp(negotiated, self.media_address, endpoint.port), self.contact()
        )
        call.answered = True
        self._respond(transaction, ok)
        bridge.start()
        if link is None:
            await start_voicemail(self, call, voicemail_message or "")
            return
        await self.mark_answered(call, link, url)

    def bridge_media(
        self, call: LiveCall, link: AgentLink | None, negotiated: Negotiated, endpoint: RtpEndpoint
    ) -> MediaSession:
        """The media session between the call's RTP endpoint and its agent link."""
        bridge = self.new_bridge(call, caller_alaw=negotiated.payload_type == 8)
        bridge.caller = RtpLeg(
            endpoint,
            bridge,
            payload_type=negotiated.payload_type,
            event_payload_type=negotiated.event_payload_type,
            remote=(negotiated.remote_address, negotiated.remote_port),
            signalling_host=(call.far_end or ("", 0))[0] or None,
        )
        if link is not None:
            bridge.attach_agent(link)
        return bridge

    def new_bridge(self, call: LiveCall, *, caller_alaw: bool) -> MediaSession:
        """A media session for the call with the number's agent options; the caller leg is next."""
        record = call.lifecycle.record
        plan = MediaPlan(
            call_id=call.lifecycle.call_id,
            caller_alaw=caller_alaw,
            organization_id=record.organization_id,
            agent_protocol=call.agent_protocol,
            agent_format=AGENT_FORMATS.get(call.agent_audio, AGENT_FORMATS["mulaw8k"]),
            record=call.recording_enabled or call.voicemail,
            custom_parameters=_custom_parameters(record),
            speech_by_default=call.agent_audio == "mulaw8k",
        )
        bridge = self.media.create(plan, _CallMediaEvents(self, call, asyncio.get_running_loop()))
        call.bridge = bridge
        return bridge

    def _publish_soon(self, call: LiveCall, path: Path) -> None:
        task = asyncio.create_task(self._publish_recording(call, path))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_recording(self, call: LiveCall, path: Path) -> None:
        """Move a finished recording into the blob store, link it to the call, announce it."""
        lifecycle = call.lifecycle
        await publish_recording(self.services, lifecycle.record, lifecycle.agent_identity_id, path)

    async def mark_answered(self, call: LiveCall, link: AgentLink, url: str | None) -> None:
        call.duration_timer = asyncio.get_running_loop().call_later(
            self.services.settings.max_call_seconds,
            lambda: self.spawn(self.end_call(call, "max_duration", send_bye=True)),
        )
        bridge = call.bridge
        await call.lifecycle.transition(
            "answered",
            changes={
                "client_websocket_url": url,
                "use_inkbox_stt": bridge is not None and bridge.stt_mode,
                "use_inkbox_tts": bridge is not None and bridge.tts_mode,
                "owner": self.owner,
                **(bridge.media_times() if bridge is not None else {}),
            },
        )
        if self.services.outbox is not None:
            self.services.outbox.wake()

    @property
    def owner(self) -> str:
        """This process's name on the calls it owns (API hang-ups find it by this)."""
        return owner_id()

    async def agent_url(
        self, call: LiveCall, number: PhoneNumber, target: RouteTarget
    ) -> str | None:
        if target.action == "auto_accept":
            return target.client_websocket_url
        if not target.incoming_call_webhook_url:
            return None
        return await self._ask_incoming_webhook(call, number, target)

    async def _ask_incoming_webhook(
        self, call: LiveCall, number: PhoneNumber, target: RouteTarget
    ) -> str | None:
        """POST ``phone.incoming_call``; the reply answers (with a URL) or rejects."""
        assert target.incoming_call_webhook_url is not None
        record = call.lifecycle.record
        identities = []
        if target.agent_identity_id:
            identity = await self.services.repository.get_identity(target.agent_identity_id)
            if identity is not None:
                identities.append(
                    {
                        "id": identity.id,
                        "agent_handle": identity.agent_handle,
                        "display_name": identity.display_name,
                    }
                )
        body = json.dumps(
            {
                "event_type": "phone.incoming_call",
                "id": record.id,
                "local_phone_number": record.local_phone_number,
                "remote_phone_number": record.remote_phone_number,
                "direction": "inbound",
                "status": record.status,
                "phone_number_id": number.id,
                "agent_identities": identities,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        headers.update(await self._signature(target.agent_identity_id, record.id, body))
        try:
            check_url_literal(
                target.incoming_call_webhook_url,
                allow_private=self.services.settings.allow_private_targets,
            )
            async with self.services.http.post(
                target.incoming_call_webhook_url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=INCOMING_WEBHOOK_SECONDS),
            ) as response:
                if response.status // 100 != 2:
                    return None
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError, UnsafeTarget) as exc:
            # A URL the guard refuses is an unreachable webhook: the next target, voicemail or 480.
            log.info("incoming-call webhook failed: %s", exc, extra={"call_id": record.id})
            return None
        if isinstance(reply, dict) and reply.get("action") == "reject":
            raise CallDeclined
        if not isinstance(reply, dict) or reply.get("action") != "answer":
            log.info("incoming-call webhook gave no decision", extra={"call_id": record.id})
            return None
        url = reply.get("client_websocket_url") or target.client_websocket_url
        return url if isinstance(url, str) else None

    async def _signature(
        self, identity_id: str | None, request_id: str, body: bytes
    ) -> dict[str, str]:
        if identity_id is None:
            return {}
        sealed = await self.services.repository.get_identity_signing_key(identity_id)
        if sealed is None:
            return {}
        key = self.services.secret_box.decrypt(sealed)
        return sign_headers(key, request_id, body, int(utcnow().timestamp()))

    async def dial_agent(
        self,
        call: LiveCall,
        url: str,
        *,
        attempts: int = 2,
        connect_seconds: float = AGENT_CONNECT_SECONDS,
    ) -> AgentLink | None:
        """Connect the agent WebSocket (default: one retry); None when it cannot be reached."""
        record = call.lifecycle.record
        context = json.dumps(
            {
                "call_id": record.id,
                "phone_number": record.local_phone_number,
                "remote_phone_number": record.remote_phone_number,
                "direction": record.direction,
            }
        )
        headers = {"X-Call-Context": context}
        headers.update(
            await self._signature(call.lifecycle.agent_identity_id, record.id, context.encode())
        )

        def on_text(text: str) -> None:
            if call.bridge is not None:  # frames before the bridge exists are not media yet
                call.bridge.agent_text(text)

        connected: list[AgentLink] = []

        def on_closed(code: int | None, reason: str) -> None:
            bridge = call.bridge
            if bridge is not None and connected and bridge.link is not connected[0]:
                return  # an earlier link, already replaced
            self._agent_gone(call, url)

        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                link = await connect_agent(
                    url,
                    headers,
                    on_text,
                    on_closed,
                    allow_private=self.services.settings.allow_private_targets,
                    connect_seconds=connect_seconds,
                )
                connected.append(link)
                metrics.AGENT_CONNECT.observe(time.perf_counter() - started)
                return link
            except AgentConnectError as exc:
                log.info(
                    "agent connect attempt %d failed: %s",
                    attempt + 1,
                    exc,
                    extra={"call_id": record.id},
                )
            if call.canceled:
                break
        return None

    def _agent_gone(self, call: LiveCall, url: str) -> None:
        """The agent's socket dropped: redial it, and end the call if the grace period runs out."""
        if call.ended or not call.answered or call.reconnect_timer is not None:
            return
        loop = asyncio.get_running_loop()
        grace = self.services.settings.agent_reconnect_grace_seconds
        call.reconnect_timer = loop.call_later(
            grace, lambda: self.spawn(self.end_call(call, "local", send_bye=True))
        )
        self.spawn(self._redial(call, url, loop.time() + grace))

    async def _redial(self, call: LiveCall, url: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        pause = 0.1
        while not call.ended and (remaining := deadline - loop.time()) > 0:
            link = await self.dial_agent(
                call, url, attempts=1, connect_seconds=min(remaining, AGENT_CONNECT_SECONDS)
            )
            if link is not None:
                if call.ended or call.bridge is None:
                    link.close(1000, "call ended")
                    return
                if call.reconnect_timer is not None:
                    call.reconnect_timer.cancel()
                    call.reconnect_timer = None
                log.info("agent reconnected", extra={"call_id": call.lifecycle.call_id})
                call.bridge.attach_agent(link)  # a fresh start frame on the new socket
                return
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, 1.0)

    async def _store_transcript(self, call: LiveCall, party: str, text: str) -> None:
        """A ``transcript`` frame from the agent, stored at the time it arrived."""
        record = call.lifecycle.record
        started = record.started_at or record.created_at
        offset = int((utcnow() - started).total_seconds() * 1000)
        metrics.TRANSCRIPTS.labels(party, "agent").inc()
        await self.store_segment(call, "local" if party == "local" else "remote", text, offset)

    async def store_segment(self, call: LiveCall, party: str, text: str, ts_ms: int) -> None:
        """Store one transcript segment and announce it as ``transcript.segment``."""
        await store_transcript_segment(self.services, call.lifecycle, party, text, ts_ms)

    # -- ending ------------------------------------------------------------------------------
    async def end_call(self, call: LiveCall, reason: HangupReason, *, send_bye: bool) -> None:
        if call.ended:
            return
        call.ended = True
        self.calls_ending += 1  # the drain waits for this, not only for ``calls``
        self._ends_stored.clear()
        try:
            await self._end_and_store(call, reason, send_bye=send_bye)
        finally:
            self.calls_ending -= 1
            if not self.calls_ending:
                self._ends_stored.set()

    async def _end_and_store(self, call: LiveCall, reason: HangupReason, *, send_bye: bool) -> None:
        self.calls.pop(call.sip_call_id, None)
        self.outbound.forget(call)
        if call.reconnect_timer is not None:
            call.reconnect_timer.cancel()
        if call.duration_timer is not None:
            call.duration_timer.cancel()
        transcribed = call.bridge.stop(reason) if call.bridge is not None else None
        if call.endpoint is not None:
            self.ports.release(call.endpoint)
        if send_bye and call.answered:
            if call.carrier_stream is not None:
                call.carrier_stream.hang_up()
            else:
                self._send_bye(call)
        if transcribed is not None:  # call.ended carries the whole transcript
            await asyncio.wait({transcribed}, timeout=TRANSCRIPT_WAIT_SECONDS)
        if call.answered:
            if call.voicemail:
                reason = "voicemail"
            await call.lifecycle.transition(
                "completed",
                hangup_reason=reason,
                changes=call.bridge.media_times() if call.bridge is not None else None,
            )
        elif not call.lifecycle.ended:
            await call.lifecycle.transition("canceled", hangup_reason=reason)

    def _send_bye(self, call: LiveCall) -> None:
        if call.outbound is not None:
            self.send_request(call.outbound.bye(), call.outbound.destination, own_port=True)
        elif call.dialog is not None:
            dialog = call.dialog
            self.send_request(dialog.bye(self.advertised_address), dialog.remote_target)

    # -- API hang-up ---------------------------------------------------------------------
    async def hangup(self, call_id: str) -> bool:
        for call in list(self.calls.values()):
            if call.lifecycle.call_id == call_id:
                if call.answered:
                    await self.end_call(call, "local", send_bye=True)
                elif call.outbound is not None:
                    self.outbound.cancel(call, "canceled")
                elif call.dialog is not None:
                    call.canceled = True
                    self._respond(call.dialog.transaction, call.dialog.reject(480))
                elif call.carrier_stream is not None:  # ringing on a carrier media stream
                    call.canceled = True
                    call.carrier_stream.hang_up()
                return True
        return False


def inbound_call_record(number: PhoneNumber, remote: str | None, carrier_call_id: str) -> Call:
    """A new inbound call on ``number`` from ``remote`` (E.164 when it is a phone number)."""
    caller = normalise_e164(remote) or (remote or "anonymous")[:32]
    return Call.initiated(
        number,
        remote_phone_number=caller,
        direction="inbound",
        sip_call_id=carrier_call_id[:255],
        owner=owner_id(),
    )


class _CallMediaEvents:
    """What a call's media session reports, turned into the gateway's call actions."""

    __slots__ = ("_call", "_gateway", "_loop")

    def __init__(
        self, gateway: SipGateway, call: LiveCall, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._gateway, self._call, self._loop = gateway, call, loop

    def agent_stopped(self, reason: str | None) -> None:
        self._gateway.spawn(self._gateway.end_call(self._call, "local", send_bye=True))

    def agent_overflowed(self) -> None:
        self._gateway.spawn(self._gateway.end_call(self._call, "agent_overflow", send_bye=True))

    def agent_transcript(self, party: str, text: str) -> None:
        self._gateway.spawn(self._gateway._store_transcript(self._call, party, text))

    def store_segment(self, party: Party, text: str, ts_ms: int) -> Awaitable[None]:
        return self._gateway.store_segment(self._call, party, text, ts_ms)

    def recording_finished(self, call_id: str, path: Path) -> None:  # on the writer's thread
        gateway, call = self._gateway, self._call
        self._loop.call_soon_threadsafe(lambda: gateway._publish_soon(call, path))


def _custom_parameters(record: Call) -> dict[str, str]:
    """What a Twilio-persona agent finds in ``start.customParameters``."""
    inbound = record.direction == "inbound"
    return {
        "call_id": record.id,
        "from": record.remote_phone_number if inbound else record.local_phone_number,
        "to": record.local_phone_number if inbound else record.remote_phone_number,
        "direction": record.direction,
    }


class GatewayCallControl:
    """What the control API asks of live calls, answered by this process's gateway."""

    def __init__(self, gateway: SipGateway) -> None:
        self.gateway = gateway
        self.remote_owners: PgCallActions | None = None  # processes on other machines

    async def place_call(self, call: Call, number: PhoneNumber) -> None:
        await self.gateway.outbound.place(call, number)

    @property
    def owner(self) -> str:
        return self.gateway.owner

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
