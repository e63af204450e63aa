"""The SIP leg's requests: what the SIP endpoint hands on, matched to the calls it concerns.

``SipRequests`` is the ``SipEndpoint``'s application. An ACK for our 2xx is
honoured only from the dialog's far end; a CANCEL must match its pending
INVITE and come from where it came from (else 481); any other request naming a
live call must carry the dialog's tags (else 481) and come from its far end or
a trusted network, or pass the trunk's digest like an INVITE would
(``sip.dialog_guard``, ``sip.trunk_auth``). Served requests are answered here:
BYE ends the call, CANCEL before the answer ends it with 487, a re-INVITE
(hold, unhold, refresh) gets our SDP again; a new INVITE starts the inbound
call flow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from trunkline.calls.driver import CallCore
from trunkline.calls.flow_events import CallerCanceled
from trunkline.calls.live_call import LiveCall
from trunkline.gateway.media_address import needs_resolving, resolve_remote
from trunkline.gateway.outbound_calls import OutboundCalls, OutboundSipLeg
from trunkline.gateway.rtp.leg import RtpLeg
from trunkline.gateway.rtp.transport import RtpEndpoint
from trunkline.gateway.sip import dialog_guard
from trunkline.gateway.sip.application import SipAddress
from trunkline.gateway.sip.dialog import InboundDialog
from trunkline.gateway.sip.dialog_guard import Dialog, Verdict, cancel_matches, check_in_dialog
from trunkline.gateway.sip.endpoint import SipEndpoint, Transport, transport_name
from trunkline.gateway.sip.header_values import Address
from trunkline.gateway.sip.message import SipRequest, SipResponse, response_to
from trunkline.gateway.sip.sdp import (
    MediaDescription,
    Negotiated,
    SdpError,
    answer_sdp,
    negotiate,
    parse_sdp,
)
from trunkline.gateway.sip.transaction import ServerTransaction
from trunkline.gateway.sip.trunk_auth import Passwords, TrunkAuth
from trunkline.gateway.sip_inbound_leg import SipInboundLeg
from trunkline.storage.models import HangupReason

log = logging.getLogger("trunkline.sip")
InboundCall = Callable[[ServerTransaction, SipAddress], Coroutine[Any, Any, None]]


class SipCalls(Protocol):
    """What request handling uses of the SIP gateway: its endpoint, its live calls, the
    trunk's digest and how requests end or touch a call."""

    @property
    def endpoint(self) -> SipEndpoint: ...

    @property
    def calls(self) -> dict[str, LiveCall]: ...

    @property
    def core(self) -> CallCore: ...

    @property
    def outbound(self) -> OutboundCalls: ...

    @property
    def trunk_auth(self) -> TrunkAuth: ...

    @property
    def media_address(self) -> str: ...

    def contact(
        self, *, outbound: bool = False, transport: str = "UDP", sips: bool = False
    ) -> str: ...

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None: ...

    async def end_call(self, call: LiveCall, reason: HangupReason, *, send_bye: bool) -> None: ...

    async def call_passwords(self, call: LiveCall) -> Passwords:
        """Who may authenticate a request in ``call``'s dialog (as for its INVITE)."""
        ...


class SipRequests:
    """Requests from the SIP endpoint, for the gateway's live calls or a new inbound one."""

    def __init__(self, gateway: SipCalls, inbound_call: InboundCall) -> None:
        self.gateway = gateway
        self.inbound_call = inbound_call  # the inbound call flow, from a new INVITE

    @property
    def endpoint(self) -> SipEndpoint:
        return self.gateway.endpoint

    def on_request(
        self, request: SipRequest, source: SipAddress, *, trusted: bool, via: Transport | None
    ) -> None:
        """Match a request to its dialog: ACKs for our 2xx, CANCELs, and in-dialog requests."""
        call = self.gateway.calls.get(request.call_id)
        if request.method == "ACK":
            dialog = _inbound_dialog(call) if call is not None else None
            if dialog is not None:
                # the ACK for our 2xx (a new branch) to the dialog's latest INVITE,
                # honoured from the far end only
                invite = dialog.transaction
                verdict = check_in_dialog(request, source, dialog.identity, trusted=trusted)
                if verdict is not Verdict.ACCEPT:
                    self.endpoint.refuse(dialog_guard.ACK_STRANGER)
                elif request.cseq[0] == invite.request.cseq[0]:
                    self.endpoint.serve_ack(invite, request)
            return
        if request.method == "CANCEL":
            pending = self.endpoint.pending_invite(request)
            if (
                pending is None  # names a ringing call but none of its INVITE transactions
                and call is not None
                and not call.answered
                or pending is not None
                and not cancel_matches(request, source, pending.request, pending.address)
            ):
                self.endpoint.refuse(dialog_guard.CANCEL_MISMATCH, request, source, 481, via=via)
                return
        elif call is None and request.method == "INVITE" and _to_tag(request) is not None:
            # A re-INVITE for a dialog this process does not have (RFC 3261 §12.2.2): it is
            # not a new call.
            self.endpoint.refuse(dialog_guard.NO_DIALOG, request, source, 481, via=via)
            return
        elif call is not None:
            verdict = check_in_dialog(request, source, _dialog(call), trusted=trusted)
            if verdict is Verdict.WRONG_TAGS:
                self.endpoint.refuse(dialog_guard.WRONG_TAGS, request, source, 481, via=via)
                return
            if verdict is Verdict.STRANGER:
                self._authenticate_stranger(request, source, call, via)
                return
        self.endpoint.serve(request, source, trusted=trusted, via=via)

    def on_invite(self, transaction: ServerTransaction, source: SipAddress, trusted: bool) -> None:
        request = transaction.request
        if request.call_id in self.gateway.calls:  # re-INVITE: hold/unhold or refresh
            self.endpoint.respond(transaction, response_to(request, 100))
            self._reinvite(self.gateway.calls[request.call_id], transaction)
            return
        if trusted:  # untrusted sources hear nothing before they authenticate
            self.endpoint.respond(transaction, response_to(request, 100))
        self.gateway.spawn(self.inbound_call(transaction, source))

    def on_bye(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        call = self.gateway.calls.get(request.call_id)
        if call is None:
            self.endpoint.respond(transaction, response_to(request, 481))
            return
        self.endpoint.respond(transaction, response_to(request, 200))
        self.gateway.spawn(self.gateway.end_call(call, "remote", send_bye=False))

    def on_cancel(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        invite = self.endpoint.pending_invite(request)
        call = self.gateway.calls.get(request.call_id)
        if invite is None or call is None or call.answered or isinstance(call.leg, OutboundSipLeg):
            self.endpoint.respond(transaction, response_to(request, 481))
            return
        dialog = _inbound_dialog(call)
        if dialog is None or dialog.transaction is not invite:  # a re-INVITE: too late
            self.endpoint.respond(transaction, response_to(request, 481))
            return
        self.endpoint.respond(transaction, response_to(request, 200))
        self.gateway.core.post(call, CallerCanceled())  # the call flow answers the INVITE 487

    def on_ack_timeout(self, transaction: ServerTransaction) -> None:
        call = self.gateway.calls.get(transaction.request.call_id)
        if call is not None and call.answered and not call.ended:
            log.warning("no ACK for 200 OK", extra={"call_id": call.lifecycle.call_id})
            self.gateway.spawn(self.gateway.end_call(call, "local", send_bye=True))

    def on_stray_response(self, response: SipResponse) -> None:
        # A retransmitted 2xx to our INVITE means our ACK was lost: send it again.
        call = self.gateway.calls.get(response.call_id)
        if (
            call is not None
            and isinstance(call.leg, OutboundSipLeg)
            and 200 <= response.status < 300
        ):
            self.gateway.outbound.resend_ack(call)

    def _reinvite(self, call: LiveCall, transaction: ServerTransaction) -> None:
        request = transaction.request
        leg = call.bridge.caller if call.bridge is not None else None
        # The call keeps its codec: a re-INVITE is answered with it or refused.
        codecs = (leg.codec,) if isinstance(leg, RtpLeg) else ("PCMU", "PCMA")
        try:
            offer = parse_sdp(request.body)
            negotiated = negotiate(offer, codecs)
        except SdpError as exc:
            self.endpoint.respond(transaction, response_to(request, 488, str(exc)[:60]))
            return
        if needs_resolving(negotiated):  # a c= host name: looked up off the loop first
            self.gateway.spawn(self._reinvite_resolved(call, transaction, negotiated, offer))
            return
        self._answer_reinvite(call, transaction, negotiated)

    async def _reinvite_resolved(
        self,
        call: LiveCall,
        transaction: ServerTransaction,
        negotiated: Negotiated,
        offer: MediaDescription,
    ) -> None:
        try:
            negotiated = await resolve_remote(negotiated, offer.address_type)
        except SdpError as exc:
            self.endpoint.respond(transaction, response_to(transaction.request, 488, str(exc)[:60]))
            return
        self._answer_reinvite(call, transaction, negotiated)

    def _answer_reinvite(
        self, call: LiveCall, transaction: ServerTransaction, negotiated: Negotiated
    ) -> None:
        request = transaction.request
        response = response_to(request, 200)
        endpoint = _rtp_endpoint(call)
        leg = call.bridge.caller if call.bridge is not None else None
        if endpoint is not None:
            if isinstance(leg, RtpLeg) and not negotiated.remote_address.startswith("0.0.0.0"):
                remote = (negotiated.remote_address, negotiated.remote_port)
                if not endpoint.move(remote):  # a shared port with another call there
                    refusal = response_to(request, 488, "Media Source In Use")
                    self.endpoint.respond(transaction, refusal)
                    return
                leg.session.remote = remote
            profile, crypto = _srtp_answer(call)
            response.body = answer_sdp(
                negotiated,
                self.gateway.media_address,
                endpoint.port,
                profile=profile,
                crypto=crypto,
            )
            response.headers.add("Content-Type", "application/sdp")
        dialog = _inbound_dialog(call)
        transport = transport_name(self.endpoint.transport_of(transaction))
        sips = request.uri[:5].lower() == "sips:"
        response.headers.add("Contact", self.gateway.contact(transport=transport, sips=sips))
        if call.answered and dialog is not None:  # its ACK is matched through the dialog
            dialog.transaction = transaction
        self.endpoint.respond(transaction, response)

    def _authenticate_stranger(
        self, request: SipRequest, source: SipAddress, call: LiveCall, via: Transport | None
    ) -> None:
        """An in-dialog request from outside the dialog and the trusted networks: digest, as for
        an INVITE (challenged or refused statelessly), and only then served."""
        if request.headers.get("Authorization") is None:
            refusal = self.gateway.trunk_auth.challenge(source[0])
            self.endpoint.refuse(
                dialog_guard.STRANGER, request, source, refusal.status, via=via, **refusal.headers
            )
            return
        self.gateway.spawn(self._serve_if_authenticated(request, source, call, via))

    async def _serve_if_authenticated(
        self, request: SipRequest, source: SipAddress, call: LiveCall, via: Transport | None
    ) -> None:
        passwords = await self.gateway.call_passwords(call)
        refusal = self.gateway.trunk_auth.check(request, lambda: passwords, source[0])
        if refusal is not None:  # answered as if it had just arrived
            self.endpoint.refuse(
                dialog_guard.STRANGER, request, source, refusal.status, via=via, **refusal.headers
            )
            return
        if self.gateway.calls.get(request.call_id) is call:
            self.endpoint.serve(request, source, trusted=False, via=via)


def _dialog(call: LiveCall) -> Dialog:
    """The call's dialog as the far end names it; a carrier stream's matches no SIP request."""
    leg = call.leg
    if isinstance(leg, OutboundSipLeg):
        return leg.invite.identity
    if isinstance(leg, SipInboundLeg):
        return leg.dialog.identity
    return Dialog("", None, frozenset())


def _inbound_dialog(call: LiveCall) -> InboundDialog | None:
    """The dialog of a call that came in over SIP; None for any other leg."""
    leg = call.leg
    return leg.dialog if isinstance(leg, SipInboundLeg) else None


def _rtp_endpoint(call: LiveCall) -> RtpEndpoint | None:
    """The RTP port of a SIP call (inbound or outbound); None for a carrier stream."""
    leg = call.leg
    return leg.endpoint if isinstance(leg, (SipInboundLeg, OutboundSipLeg)) else None


def _srtp_answer(call: LiveCall) -> tuple[str, list[str]]:
    """The profile and crypto lines a re-INVITE's answer keeps: the call's SRTP as agreed."""
    leg = call.leg
    if isinstance(leg, (SipInboundLeg, OutboundSipLeg)):
        return leg.profile, leg.crypto_lines
    return "RTP/AVP", []


def _to_tag(request: SipRequest) -> str | None:
    """The To tag: a request that carries one belongs to an established dialog."""
    return Address.parse(request.headers.get("To") or "").tag  # parsed by check_request
