"""The SIP leg of the gateway: the glue between the SIP endpoint and the life of each call.

``sip.endpoint.SipEndpoint`` carries SIP itself (sockets, admission budget,
transactions, timers, OPTIONS, 400s); ``sip_requests.SipRequests`` matches
what it hands on to the live calls (BYE, CANCEL, re-INVITE, strangers' digest)
and hands a new INVITE to ``inbound_invites.InboundInvites``, which admits it
(trunk digest for untrusted sources, 404, 503, 488, 603) and starts its call
in the call core (``calls.driver``) with a ``SipInboundLeg``. Each inbound
dialog's messages are built by ``sip.dialog.InboundDialog``.

The call core then rings (180), asks the incoming-call webhook when the route
says so, dials the agent WebSocket (fallback agent next), binds an RTP port
and answers (200 OK with the SDP answer). CANCEL before the answer ends it
with 487. BYE from either side ends the call; so does the agent's ``stop``
(trunkline sends BYE). Outbound calls are placed by ``outbound_calls.OutboundCalls``.

The gateway is built from what it uses, explicitly: the settings, the call,
number and identity stores, the secret box, blob store, HTTP client, the
outbox's wake-up, the process's ``Draining`` flag and the digest nonce key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp

from trunkline.calls.control import Draining
from trunkline.calls.driver import TRANSCRIPT_WAIT_SECONDS
from trunkline.calls.flow_events import CallerCanceled, CallerHungUp, Drain, Event
from trunkline.calls.live_call import LiveCall
from trunkline.calls.rejected_calls import RejectedCallRecords
from trunkline.config import ConfigError, Settings
from trunkline.crypto import SecretBox
from trunkline.gateway import collector
from trunkline.gateway.call_core_setup import build_call_core
from trunkline.gateway.inbound_invites import InboundInvites
from trunkline.gateway.outbound_calls import OutboundCalls
from trunkline.gateway.registrations import Registrations
from trunkline.gateway.rtp.transport import RtpPortAllocator
from trunkline.gateway.sip.admission import Network, SourceBudget
from trunkline.gateway.sip.application import SipAddress, Transport
from trunkline.gateway.sip.dialog import InboundDialog
from trunkline.gateway.sip.digest import DigestServer
from trunkline.gateway.sip.endpoint import SipEndpoint, ignore_response, ignore_timeout
from trunkline.gateway.sip.message import SipRequest, SipResponse
from trunkline.gateway.sip.streams import (
    SipStreams,
    StreamConnectError,
    client_context,
    server_context,
)
from trunkline.gateway.sip.trunk_auth import Passwords, TrunkAuth
from trunkline.gateway.sip_requests import SipRequests
from trunkline.media.clock import MediaClock
from trunkline.media.counters import MediaTotals
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.recording import RecordingWriter
from trunkline.speech.engines import SpeechEngines
from trunkline.storage.blobs import BlobStore
from trunkline.storage.models import HangupReason
from trunkline.storage.stores import CallStore, IdentityStore, NumberStore

log = logging.getLogger("trunkline.sip")
DIGEST_REALM = "trunkline"


class SipGateway:
    """The SIP leg: its endpoint and request handling, and the calls it carries.

    ``digest_key`` signs the trunk digest's nonces; ``wake_outbox`` tells the
    webhook outbox that events were written; ``draining`` is the process's flag
    for "no new calls"."""

    def __init__(
        self,
        settings: Settings,
        *,
        call_store: CallStore,
        number_store: NumberStore,
        identity_store: IdentityStore,
        secret_box: SecretBox,
        blob_store: BlobStore,
        http: aiohttp.ClientSession,
        wake_outbox: Callable[[], None],
        draining: Draining,
        digest_key: bytes,
        clock: MediaClock,
        ports: RtpPortAllocator,
        media_address: str,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.ports = ports
        self.media_address = media_address
        self.call_store = call_store
        self.number_store = number_store
        self.inbound = InboundInvites(
            self,
            settings,
            calls=call_store,
            numbers=number_store,
            secret_box=secret_box,
            draining=draining,
        )
        self.requests = SipRequests(self, self.inbound.accept)
        self.endpoint = SipEndpoint(
            self.requests,
            settings.sip.trusted_sources,
            SourceBudget(settings.sip.unauthenticated_rate),
            available=lambda: not draining.active,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self.streams: dict[str, SipStreams] = {}  # "TCP", "TLS": listening or connecting
        self.trunk_auth = TrunkAuth(
            DigestServer(
                DIGEST_REALM, digest_key, nonce_lifetime=settings.sip.nonce_lifetime_seconds
            )
        )
        self.outbound = OutboundCalls(self, settings, calls=call_store, secret_box=secret_box)
        # Numbers' SIP registrations: kept by one process (worker 0 of serve --workers).
        self.registrations: Registrations | None = None
        if settings.process.worker_slot == 0:
            self.registrations = Registrations(
                self, settings, numbers=number_store, secret_box=secret_box
            )
        self.media_totals = MediaTotals.empty()  # what the bridges of ended calls counted
        self.recordings = RecordingWriter(settings.data_dir / "recordings")
        self.speech = SpeechEngines(settings)
        self.media = MediaSessionFactory(
            clock,
            recordings=self.recordings,
            speech=self.speech,
            totals=self.media_totals,
            max_playout_seconds=settings.media.playout_max_seconds,
            caller_jitter=(settings.media.jitter_min_ms // 20, settings.media.jitter_max_ms // 20),
        )
        self.core = build_call_core(
            settings,
            self.media,
            calls=call_store,
            identities=identity_store,
            secret_box=secret_box,
            blob_store=blob_store,
            http=http,
            wake_outbox=wake_outbox,
            spawn=self.spawn,
            on_forget=self.outbound.forget,
        )
        self.calls = self.core.calls  # by the leg's call id (SIP Call-ID)
        self.rejected_calls = RejectedCallRecords(
            call_store, settings.calls.rejected_call_record_rate, self.spawn, time.monotonic
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
    def shared_port_dropped(self) -> dict[str, int]:
        return self.ports.shared_dropped()

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

    @property
    def budget(self) -> SourceBudget:
        return self.endpoint.budget

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, host: str, port: int, *, shared: bool = False) -> SipAddress:
        """Bind SIP (``shared``: with other workers, see ``SipEndpoint.bind``)."""
        await self.endpoint.bind(host, port, shared=shared)
        sip = self.settings.sip
        if sip.tcp:
            await self.stream_transport("TCP").listen(host, self.local_address[1], shared=shared)
        if sip.tls_cert:
            try:
                context = server_context(sip.tls_cert, sip.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"TRUNKLINE_SIP_TLS_CERT/KEY unusable: {exc}") from None
            tls = self.stream_transport("TLS")
            tls.server_ssl = context
            await tls.listen(host, sip.tls_port, shared=shared)
        collector.watch(self)
        if self.registrations is not None:
            self.registrations.start()
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
        if self.registrations is not None:  # first: the registrars stop sending calls here
            await self.registrations.close()
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
        if self.ports.shared is not None:
            self.ports.shared.close()
        for streams in self.streams.values():
            streams.close()
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
        """Send a request in a new client transaction (see ``SipEndpoint.send_request``)."""
        self.endpoint.send_request(
            request, destination, on_response, on_timeout, own_port=own_port, transport=transport
        )

    def stream_transport(self, name: str) -> SipStreams:
        """SIP over TCP or TLS (``name``), created on first use; outbound TLS connections
        verify the trunk against TRUNKLINE_SIP_TLS_CA."""
        streams = self.streams.get(name)
        if streams is None:
            sip = self.settings.sip
            client_ssl = None
            if name == "TLS":
                try:
                    client_ssl = client_context(sip.tls_ca, sip.tls_cert, sip.tls_key)
                except (OSError, ssl.SSLError) as exc:
                    raise ConfigError(f"TRUNKLINE_SIP_TLS_CA unusable: {exc}") from None
            streams = SipStreams(
                name,
                self.endpoint.datagram_received,
                client_ssl=client_ssl,
                max_connections=sip.max_connections,
                idle_seconds=sip.connection_idle_seconds,
            )
            self.streams[name] = streams
        return streams

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

    def contact(self, *, outbound: bool = False, transport: str = "UDP", sips: bool = False) -> str:
        """Our Contact: over TCP or TLS with its transport, ``sips:`` where the dialog's
        Request-URI was (RFC 5630: a sips: dialog keeps sips: Contacts)."""
        if transport == "TLS" and sips:
            host, port = self.stream_address(transport)
            return f"<sips:trunkline@{host}:{port}>"
        if transport != "UDP":
            host, port = self.stream_address(transport)
            return f"<sip:trunkline@{host}:{port};transport={transport.lower()}>"
        host, port = self.outbound_address if outbound else self.advertised_address
        return f"<sip:trunkline@{host}:{port}>"

    def stream_address(self, transport: str) -> SipAddress:
        """Our TCP or TLS address as peers should reach it (Via, Contact)."""
        streams = self.streams.get(transport)
        host = self.advertised_address[0]
        if streams is not None and streams.local_address is not None:
            return (host, streams.local_address[1])
        return (host, self.settings.sip.tls_port if transport == "TLS" else self.local_address[1])

    async def call_passwords(self, call: LiveCall) -> Passwords:
        """Who may authenticate a request in ``call``'s dialog: as for its INVITE."""
        return await self.inbound.call_passwords(call)

    # -- ending ------------------------------------------------------------------------------
    async def end_call(self, call: LiveCall, reason: HangupReason, *, send_bye: bool) -> None:
        """A SIP event ends the call: the caller's BYE (``remote``), else ours (``local``)."""
        if reason == "remote" and not send_bye:
            event: Event = CallerHungUp() if call.answered else CallerCanceled()
        else:
            event = Drain()
        await self.core.dispatch(call, event)

    def send_bye(self, dialog: InboundDialog) -> None:
        if dialog.transport == "UDP":
            self.send_request(dialog.bye(self.advertised_address), dialog.next_hop)
            return
        streams = self.stream_transport(dialog.transport)
        if not streams.has_connection(dialog.next_hop):
            # The far end closed the connection its INVITE came on: open one to its
            # Contact (RFC 3261 §18.2.2), verified like a trunk's when over TLS.
            self.spawn(self._bye_on_new_connection(dialog, streams))
            return
        bye = dialog.bye(self.stream_address(dialog.transport))
        self.send_request(bye, dialog.next_hop, transport=streams)

    async def _bye_on_new_connection(self, dialog: InboundDialog, streams: SipStreams) -> None:
        target = dialog.remote_target
        try:
            await streams.connect(target, server_hostname=target[0])
        except StreamConnectError as exc:
            log.warning("BYE not sent: %s", exc, extra={"sip_call_id": dialog.invite.call_id})
            return
        bye = dialog.bye(self.stream_address(dialog.transport))
        self.send_request(bye, target, transport=streams)

    # -- API hang-up ---------------------------------------------------------------------
    async def hangup(self, call_id: str) -> bool:
        return await self.core.hangup(call_id)
