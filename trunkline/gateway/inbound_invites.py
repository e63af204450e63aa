"""A new inbound INVITE, from admission to the call core's ring-and-answer flow.

The dialled number is looked up (INVITEs arriving together share one query);
a source outside ``TRUNKLINE_SIP_TRUSTED_SOURCES`` must then pass the trunk's
digest (``sip.trunk_auth``) before anything about the number is revealed —
unknown numbers, unknown users and wrong passwords all get the same challenge
or the same 403, sent once and statelessly. Then: unknown number → 404,
draining or the organisation at its call limit → 503, a full database queue →
503 with Retry-After 5, unusable SDP (or a ``c=`` host name that does not
resolve) → 488, a number whose route rejects →
603 (and a rejected-call record within the record rate). Otherwise the call is
stored and handed to the call core with a ``SipInboundLeg``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Protocol

from trunkline import metrics
from trunkline.calls.control import Draining
from trunkline.calls.driver import CallCore
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.calls.live_call import LiveCall
from trunkline.calls.records import inbound_call_record, normalise_e164
from trunkline.calls.rejected_calls import RejectedCallRecords
from trunkline.calls.routing import load_inbound_route
from trunkline.calls.shared_lookups import SharedLookups
from trunkline.config import Settings
from trunkline.crypto import SecretBox
from trunkline.gateway.media_address import resolve_remote
from trunkline.gateway.rtp.transport import RtpPortAllocator
from trunkline.gateway.sip.admission import is_trusted
from trunkline.gateway.sip.application import SipAddress
from trunkline.gateway.sip.dialog import InboundDialog
from trunkline.gateway.sip.endpoint import SipEndpoint, transport_name
from trunkline.gateway.sip.message import (
    Address,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    response_to,
)
from trunkline.gateway.sip.sdes import answer_offer
from trunkline.gateway.sip.sdp import SdpError, negotiate, parse_sdp
from trunkline.gateway.sip.transaction import ServerTransaction, State
from trunkline.gateway.sip.trunk_auth import Passwords, TrunkAuth
from trunkline.gateway.sip_inbound_leg import SipInboundLeg
from trunkline.storage.errors import CallLimitReached
from trunkline.storage.fairness import (
    SIP_LOOKUP_TENANT,
    DatabaseBusy,
    bind_database_tenant,
    database_work,
)
from trunkline.storage.models import Call, PhoneNumber
from trunkline.storage.stores import CallStore, NumberStore

log = logging.getLogger("trunkline.sip")


class InviteHost(Protocol):
    """What an inbound INVITE uses of the SIP gateway."""

    @property
    def endpoint(self) -> SipEndpoint: ...

    @property
    def trunk_auth(self) -> TrunkAuth: ...

    @property
    def core(self) -> CallCore: ...

    @property
    def ports(self) -> RtpPortAllocator: ...

    @property
    def media_address(self) -> str: ...

    @property
    def rejected_calls(self) -> RejectedCallRecords: ...

    def contact(
        self, *, outbound: bool = False, transport: str = "UDP", sips: bool = False
    ) -> str: ...

    def send_bye(self, dialog: InboundDialog) -> None: ...


class InboundInvites:
    """Admits new INVITEs and starts their calls (see the module docstring)."""

    def __init__(
        self,
        gateway: InviteHost,
        settings: Settings,
        *,
        calls: CallStore,
        numbers: NumberStore,
        secret_box: SecretBox,
        draining: Draining,
    ) -> None:
        self._gateway = gateway
        self._settings = settings
        self._calls = calls
        self._numbers = numbers
        self._secret_box = secret_box
        self._draining = draining
        self.lookups = SharedLookups()

    def _respond(self, transaction: ServerTransaction, response: SipResponse) -> None:
        self._gateway.endpoint.respond(transaction, response)

    async def accept(self, transaction: ServerTransaction, source: SipAddress) -> None:
        """A new INVITE (its 100 Trying already sent to a trusted source).

        Every INVITE gets a final response: should the flow fail before one was sent
        (a header it could not parse, a fault), 400 or 500 answers and frees it.
        """
        try:
            await self._accept(transaction, source)
        except SipParseError as exc:
            self._answer_unanswered(transaction, source, 400, f"Bad Request ({str(exc)[:60]})")
        except Exception:
            log.exception(
                "inbound INVITE failed", extra={"sip_call_id": transaction.request.call_id}
            )
            self._answer_unanswered(transaction, source, 500)

    def _answer_unanswered(
        self, transaction: ServerTransaction, source: SipAddress, status: int, reason: str = ""
    ) -> None:
        if transaction.state is not State.PROCEEDING:
            return  # answered (or forgotten) already
        dialog = InboundDialog.accept(transaction, source)
        endpoint = self._gateway.endpoint
        if is_trusted(source[0], endpoint.trusted_networks):
            self._respond(transaction, dialog.reject(status, reason or None))
        else:  # once, and forgotten: nothing retransmitted to a source that has not authenticated
            arrived_on = endpoint.forget(transaction)
            endpoint.send_once(
                dialog.reject(status, reason or None), transaction.address, arrived_on
            )

    async def _accept(self, transaction: ServerTransaction, source: SipAddress) -> None:
        gateway = self._gateway
        endpoint = gateway.endpoint
        request = transaction.request
        transport = transport_name(endpoint.transport_of(transaction))
        dialog = InboundDialog.accept(transaction, source, transport)

        def reject(status: int, reason: str | None = None, **headers: str) -> None:
            self._respond(transaction, dialog.reject(status, reason, **headers))

        def reject_once(status: int, **headers: str) -> None:
            """To a source that has not authenticated: once, and the transaction forgotten,
            so nothing is retransmitted to an address that may not have asked."""
            arrived_on = endpoint.forget(transaction)
            endpoint.send_once(dialog.reject(status, **headers), transaction.address, arrived_on)

        try:
            dialled = normalise_e164(SipUri.parse(request.uri).user)
        except SipParseError:
            dialled = None
        try:
            number = await self._dialled_number(dialled) if dialled else None
        except DatabaseBusy:
            refuse = reject if is_trusted(source[0], endpoint.trusted_networks) else reject_once
            refuse(503, Retry_After="5")
            return
        if number is not None:
            bind_database_tenant(number.organization_id)  # the rest of this call is its work
        if not is_trusted(source[0], endpoint.trusted_networks):
            # Before anything about the number is revealed: unknown numbers, unknown users
            # and wrong passwords all get the same challenge or the same 403.
            passwords = partial(self.trunk_passwords, number)
            refusal = gateway.trunk_auth.check_invite(request, passwords, source[0])
            if refusal is not None:
                reject_once(refusal.status, **refusal.headers)
                return
            self._respond(transaction, response_to(request, 100))
        if number is None:
            reject(404)
            return
        if self._draining.active:
            reject(503, Retry_After="30")
            return
        if gateway.core.at_capacity(number.organization_id):  # this process's calls alone
            metrics.CALLS_AT_LIMIT.inc()
            reject(503, Retry_After="30")
            return
        try:
            offer = parse_sdp(request.body)
            negotiated = await resolve_remote(
                negotiate(offer, self._settings.sip.codec_order), offer.address_type
            )
            # SDES keys cross in the SDP: SRTP only when the INVITE came over TLS.
            srtp = answer_offer(offer, self._settings.sip.srtp, over_tls=transport == "TLS")
        except SdpError as exc:
            reject(488, f"Not Acceptable Here ({str(exc)[:60]})")
            return
        remote_party = Address.parse(request.headers.get("From") or "")
        try:
            route = await self.lookups.run(
                ("route", number.id), lambda: load_inbound_route(self._numbers, number)
            )
            if route.rejects:
                reject(603)  # answered first; the record follows, within the record rate
                initiated = _call_record(number, request, remote_party)
                gateway.rejected_calls.record(number, initiated)
                return
            record = await self._calls.create_call(
                _call_record(number, request, remote_party),
                max_live_per_org=self._settings.calls.max_calls_per_org,
            )
        except DatabaseBusy:
            reject(503, Retry_After="5")  # the organisation's database queue is full
            return
        except CallLimitReached:  # counted over every process sharing the database
            metrics.CALLS_AT_LIMIT.inc()
            reject(503, Retry_After="30")
            return
        lifecycle = CallLifecycle(record, self._calls, agent_identity_id=number.agent_identity_id)
        leg = SipInboundLeg(
            dialog,
            negotiated,
            respond=self._respond,
            send_bye=gateway.send_bye,
            ports=gateway.ports,
            contact=gateway.contact(transport=transport, sips=is_sips(request.uri)),
            media_address=gateway.media_address,
            srtp=srtp,
            profile=offer.profile,
        )
        call = LiveCall(
            leg_call_id=request.call_id,
            lifecycle=lifecycle,
            leg=leg,
            agent_protocol=number.agent_protocol,
            agent_audio=number.agent_audio,
            recording_enabled=number.recording_enabled,
        )
        await gateway.core.ring_and_answer(call, route)

    async def _dialled_number(self, dialled: str) -> PhoneNumber | None:
        """The active number an INVITE dialled; INVITEs arriving together share one query."""
        numbers = self._numbers
        with database_work(SIP_LOOKUP_TENANT):
            return await self.lookups.run(
                ("number", dialled), lambda: numbers.find_active_number(dialled)
            )

    async def call_passwords(self, call: LiveCall) -> Passwords:
        """Who may authenticate a request in ``call``'s dialog: as for its INVITE."""
        number = await self._numbers.get_number(call.lifecycle.record.phone_number_id)
        return self.trunk_passwords(number)

    def trunk_passwords(self, number: PhoneNumber | None) -> Passwords:
        """Who an untrusted source may authenticate as: the trunk user, the number's own."""
        settings = self._settings
        passwords: Passwords = {}
        if settings.sip.trunk_username:
            passwords[settings.sip.trunk_username] = settings.sip.trunk_password
        if number is not None and number.auth_username and number.auth_password_encrypted:
            sealed = number.auth_password_encrypted
            passwords[number.auth_username] = self._secret_box.decrypt(sealed)
        return passwords


def is_sips(uri: str) -> bool:
    return uri[:5].lower() == "sips:"


def _call_record(number: PhoneNumber, request: SipRequest, remote_party: Address) -> Call:
    try:
        remote = SipUri.parse(remote_party.uri).user or "anonymous"
    except SipParseError:
        remote = "anonymous"
    return inbound_call_record(number, remote, request.call_id)
