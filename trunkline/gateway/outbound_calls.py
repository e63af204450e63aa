"""Outbound calls: ``POST /place-call`` → INVITE through the number's trunk → agent bridge.

The trunk is the bring-your-own number's ``trunk_address`` (with its digest
credentials) or the configured default trunk. Status follows the responses:
180/183 → ``ringing``; 2xx → ACK, the agent WebSocket is dialled, media is
bridged and the call is ``answered``; 4xx/5xx/6xx or no response → ``failed``.
A call not answered within the ring timeout is cancelled (``failed``, no
answer); an API hang-up before the answer sends CANCEL (``canceled``).

A trunk address ``sips:host[:port]`` or ``host[:port];transport=tls`` is
reached over TLS (port 5061 by default), its certificate verified against
TRUNKLINE_SIP_TLS_CA and its host name; ``;transport=tcp`` over TCP. A trunk
that cannot be reached or verified fails the dial with the reason. Over TLS the
offer carries SDES keys as TRUNKLINE_SIP_SRTP says (``sip.sdes``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from trunkline.calls.control import CallCapacityError, DialError
from trunkline.calls.driver import CallCore
from trunkline.calls.flow import CallFlow
from trunkline.calls.flow_events import CalleeAnswered, RingCanceled, RingFailed
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.calls.live_call import LiveCall
from trunkline.calls.owner_channel import owner_id
from trunkline.config import Settings
from trunkline.crypto import SecretBox
from trunkline.gateway.media_address import resolve_remote
from trunkline.gateway.rtp.leg import RtpLeg
from trunkline.gateway.rtp.srtp import SrtpContext
from trunkline.gateway.rtp.transport import PortsExhausted, RtpEndpoint, RtpPortAllocator
from trunkline.gateway.sip.application import SipAddress, Transport
from trunkline.gateway.sip.message import SipRequest, SipResponse
from trunkline.gateway.sip.sdes import (
    Crypto,
    SrtpKeys,
    accept_answer,
    offer_cryptos,
    offer_profile,
)
from trunkline.gateway.sip.sdp import (
    CODEC_PAYLOAD_TYPES,
    Negotiated,
    SdpError,
    build_sdp,
    negotiate,
    parse_sdp,
)
from trunkline.gateway.sip.streams import SipStreams, StreamConnectError
from trunkline.gateway.sip.transaction import T1
from trunkline.gateway.sip.trunk_address import Trunk, TrunkAddressError
from trunkline.gateway.sip.uac import (
    Answered,
    Credentials,
    Failed,
    OutboundInvite,
    Resend,
    Ringing,
)
from trunkline.media.session import MediaSession
from trunkline.storage.models import Call, CallStatus, HangupReason, PhoneNumber
from trunkline.storage.stores import CallStore


class SipHost(Protocol):
    """What outbound calls use of the gateway's SIP side and call core."""

    core: CallCore
    calls: dict[str, LiveCall]
    ports: RtpPortAllocator
    media_address: str
    outbound: OutboundCalls

    @property
    def transport(self) -> asyncio.DatagramTransport | None: ...

    @property
    def own_transport(self) -> asyncio.DatagramTransport | None: ...

    @property
    def outbound_address(self) -> SipAddress: ...

    def at_capacity(self, organization_id: str) -> bool: ...

    def contact(
        self, *, outbound: bool = False, transport: str = "UDP", sips: bool = False
    ) -> str: ...

    def stream_address(self, transport: str) -> SipAddress: ...

    def stream_transport(self, name: str) -> SipStreams: ...

    def send_request(
        self,
        request: SipRequest,
        destination: SipAddress,
        on_response: Callable[[SipResponse], None] = ...,
        on_timeout: Callable[[], None] = ...,
        *,
        own_port: bool = False,
        transport: Transport | None = None,
    ) -> None: ...

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None: ...

    async def end_call(self, call: LiveCall, reason: HangupReason, *, send_bye: bool) -> None: ...


log = logging.getLogger("trunkline.sip.outbound")
EVENT_PAYLOAD_TYPE = 101
CANCEL_GIVE_UP_SECONDS = 64 * T1  # no final response after CANCEL (RFC 3261 §9.1)
CancelOutcome = tuple[CallStatus, HangupReason, str]  # status, hangup reason, failure detail


class OutboundCalls:
    """Places and follows this process's outbound INVITEs for its gateway."""

    def __init__(
        self, gateway: SipHost, settings: Settings, *, calls: CallStore, secret_box: SecretBox
    ) -> None:
        self.gateway = gateway
        self._settings = settings
        self._calls = calls
        self._secret_box = secret_box
        self._ring_timers: dict[str, asyncio.TimerHandle] = {}
        self._acks: dict[str, bytes] = {}  # last ACK per answered call, for lost-ACK resends

    async def trunk_for(self, number: PhoneNumber) -> tuple[SipAddress, Trunk, Credentials | None]:
        """Where to send the INVITE (resolved), the trunk as configured, and the credentials."""
        settings = self._settings
        address = number.trunk_address or settings.sip.trunk_address
        if not address:
            raise DialError("no SIP trunk is configured for this number")
        try:
            trunk = Trunk.parse(address)
        except TrunkAddressError as exc:
            raise DialError(str(exc)) from None
        credentials: Credentials | None = None
        if number.trunk_address:
            if number.auth_username and number.auth_password_encrypted:
                password = self._secret_box.decrypt(number.auth_password_encrypted)
                credentials = Credentials(number.auth_username, password)
        elif settings.sip.trunk_username:
            credentials = Credentials(settings.sip.trunk_username, settings.sip.trunk_password)
        loop = asyncio.get_running_loop()
        kind = socket.SOCK_DGRAM if trunk.transport == "UDP" else socket.SOCK_STREAM
        try:
            infos = await loop.getaddrinfo(trunk.host, trunk.port, family=socket.AF_INET, type=kind)
        except OSError as exc:
            raise DialError(f"trunk address {trunk.host!r} does not resolve") from exc
        resolved = (str(infos[0][4][0]), int(infos[0][4][1]))
        return resolved, trunk, credentials

    async def _connect_trunk(self, trunk: Trunk, destination: SipAddress) -> SipStreams | None:
        """The TCP or TLS connection to a stream trunk (None for UDP); DialError if it fails."""
        if trunk.transport == "UDP":
            return None
        streams = self.gateway.stream_transport(trunk.transport)
        try:
            await streams.connect(destination, server_hostname=trunk.host)
        except StreamConnectError as exc:
            log.warning("trunk unreachable: %s", exc)
            raise DialError(str(exc)) from None
        return streams

    async def place(self, record: Call, number: PhoneNumber) -> None:
        """Send the INVITE; raises DialError when it cannot be sent at all."""
        gateway = self.gateway
        if gateway.at_capacity(record.organization_id):
            raise CallCapacityError("Too many concurrent calls for this organisation")
        destination, trunk, credentials = await self.trunk_for(number)
        streams = await self._connect_trunk(trunk, destination)
        try:
            endpoint = await gateway.ports.open()
        except PortsExhausted:
            raise DialError("no free media port") from None
        if streams is None:
            via_host, via_port = gateway.outbound_address
        else:
            via_host, via_port = gateway.stream_address(trunk.transport)
        policy = self._settings.sip.srtp
        cryptos = offer_cryptos(policy, over_tls=trunk.transport == "TLS")
        profile = offer_profile(policy, cryptos)
        invite = OutboundInvite(
            request_uri=trunk.request_uri(record.remote_phone_number),
            from_number=record.local_phone_number,
            to_number=record.remote_phone_number,
            via_host=via_host,
            via_port=via_port,
            contact=gateway.contact(
                outbound=True, transport=trunk.transport, sips=trunk.secure_uri
            ),
            offer=build_sdp(
                gateway.media_address,
                endpoint.port,
                [CODEC_PAYLOAD_TYPES[name] for name in self._settings.sip.codec_order],
                event_payload_type=EVENT_PAYLOAD_TYPE,
                profile=profile,
                crypto=[c.value for c in cryptos],
            ),
            destination=destination,
            credentials=credentials,
            transport=trunk.transport,
        )
        invite.invite()
        lifecycle = CallLifecycle(record, self._calls, agent_identity_id=number.agent_identity_id)
        stored = await self._calls.update_call(
            record.id, {"sip_call_id": invite.call_id, "owner": owner_id()}
        )
        if stored is not None:
            lifecycle.record = stored
        call = LiveCall(
            leg_call_id=invite.call_id,
            lifecycle=lifecycle,
            flow=CallFlow.outbound(),
            agent_protocol=number.agent_protocol,
            agent_audio=number.agent_audio,
            recording_enabled=number.recording_enabled,
        )
        call.leg = OutboundSipLeg(gateway, call, invite, endpoint, streams, cryptos, profile)
        gateway.calls[invite.call_id] = call
        self._send_invite(call)
        timeout = self._settings.sip.ring_timeout_seconds
        self._ring_timers[invite.call_id] = asyncio.get_running_loop().call_later(
            timeout, self.cancel, call, "no answer"
        )

    def _send_invite(self, call: LiveCall) -> None:
        invite = sip_leg(call).invite
        assert invite.current is not None
        self.gateway.send_request(
            invite.current,
            invite.destination,
            lambda response: self._on_response(call, response),
            lambda: self._finish(call, "failed", "local", "no response from the trunk"),
            own_port=True,
            transport=sip_leg(call).transport,
        )

    def _on_response(self, call: LiveCall, response: SipResponse) -> None:
        leg = sip_leg(call)
        if call.ended:
            return
        step = leg.invite.on_response(response)
        if isinstance(step, Ringing):
            self.gateway.spawn(call.lifecycle.transition("ringing"))
        elif isinstance(step, Resend):
            # After the transaction has sent its ACK for the challenge, not before.
            asyncio.get_running_loop().call_soon(self._send_invite, call)
        elif isinstance(step, Answered):
            self._acks[call.leg_call_id] = step.ack.serialize()
            self.resend_ack(call)
            self.gateway.spawn(self._connect(call, step.sdp))
        elif isinstance(step, Failed):
            if leg.cancel_outcome is not None:
                self._finish(call, *leg.cancel_outcome)
            else:
                self._finish(call, "failed", "rejected", f"{step.status} {step.reason}".strip())

    def resend_ack(self, call: LiveCall) -> None:
        ack = self._acks.get(call.leg_call_id)
        leg = call.leg
        if ack is None or not isinstance(leg, OutboundSipLeg):
            return
        transport = leg.transport or self.gateway.own_transport or self.gateway.transport
        if transport is not None:
            transport.sendto(ack, leg.invite.destination)

    async def _connect(self, call: LiveCall, sdp: bytes) -> None:
        """The callee answered: dial the agent, bridge media, mark the call answered."""
        gateway = self.gateway
        self._stop_ring_timer(call)
        canceled = call.canceled
        call.flow.handle(CalleeAnswered())
        if canceled:  # the 2xx crossed our CANCEL: the call is over
            await gateway.end_call(call, "local", send_bye=True)
            return
        leg = sip_leg(call)
        try:
            answer = parse_sdp(sdp)
            negotiated = await resolve_remote(
                negotiate(answer, self._settings.sip.codec_order), answer.address_type
            )
            srtp = accept_answer(leg.offered_cryptos, answer, self._settings.sip.srtp)
        except SdpError as exc:
            log.info("unusable SDP answer: %s", exc, extra={"call_id": call.lifecycle.call_id})
            await self._abandon(call, f"unusable SDP answer: {exc}")
            return
        url = call.lifecycle.record.client_websocket_url
        link = await gateway.core.dialer.dial_with_retry(call, url) if url else None
        if call.ended:
            if link is not None:
                link.close(1000, "call ended")
            return
        if link is None or url is None:
            await self._abandon(call, "agent unreachable")
            return
        leg.negotiated = negotiated
        leg.use_srtp(srtp)
        await gateway.core.answer_outbound(call, link, url)

    async def _abandon(self, call: LiveCall, detail: str) -> None:
        """Answered by the callee but unusable: hang up and record the failure."""
        sip_leg(call).send_bye()
        await self._finish_async(call, "failed", "local", detail)

    def cancel(self, call: LiveCall, why: str) -> None:
        """Stop ringing: CANCEL the INVITE (ring timeout or API hang-up)."""
        self._stop_ring_timer(call)
        if call.ended or call.answered or call.canceled:
            return
        call.flow.handle(RingCanceled())
        self.send_cancel(call, why)

    def send_cancel(self, call: LiveCall, why: str) -> None:
        """CANCEL the INVITE; the call ends with the final response, or after 64*T1."""
        leg = sip_leg(call)
        self._stop_ring_timer(call)
        outcome: CancelOutcome = ("failed" if why == "no answer" else "canceled", "local", why)
        leg.cancel_outcome = outcome
        self.gateway.send_request(
            leg.invite.cancel(), leg.invite.destination, own_port=True, transport=leg.transport
        )
        asyncio.get_running_loop().call_later(
            CANCEL_GIVE_UP_SECONDS, lambda: self._finish(call, *outcome)
        )

    def _stop_ring_timer(self, call: LiveCall) -> None:
        timer = self._ring_timers.pop(call.leg_call_id, None)
        if timer is not None:
            timer.cancel()

    def _finish(
        self, call: LiveCall, status: CallStatus, reason: HangupReason, detail: str
    ) -> None:
        self.gateway.spawn(self._finish_async(call, status, reason, detail))

    async def _finish_async(
        self, call: LiveCall, status: CallStatus, reason: HangupReason, detail: str
    ) -> None:
        """End a call that never reached ``answered``: ``failed`` or ``canceled``."""
        if not call.flow.handle(RingFailed(status, reason, detail or None)):
            return  # ended already
        self._stop_ring_timer(call)
        self._acks.pop(call.leg_call_id, None)
        self.gateway.calls.pop(call.leg_call_id, None)
        sip_leg(call).close_media()
        await call.lifecycle.transition(status, hangup_reason=reason, detail=detail or None)

    def forget(self, call: LiveCall) -> None:
        """The call ended through the gateway (BYE either way): drop our per-call state."""
        self._stop_ring_timer(call)
        self._acks.pop(call.leg_call_id, None)


class OutboundSipLeg:
    """The callee of an outbound call as the call core sees it: media on the call's RTP
    port once the 2xx has given its SDP answer, our hang-up a BYE, an API hang-up while
    ringing a CANCEL. It keeps the call's SIP state: the INVITE we sent (then its dialog)
    and the RTP port bound for the offer."""

    def __init__(
        self,
        gateway: SipHost,
        call: LiveCall,
        invite: OutboundInvite,
        endpoint: RtpEndpoint,
        transport: SipStreams | None = None,
        offered_cryptos: list[Crypto] | None = None,
        profile: str = "RTP/AVP",
    ) -> None:
        self._gateway = gateway
        self._call = call
        self.invite = invite
        self.endpoint = endpoint
        self.transport = transport  # the TCP or TLS connections to the trunk; None: UDP
        self.offered_cryptos = offered_cryptos or []  # SDES keys of our offer
        self.srtp: SrtpKeys | None = None  # from the 2xx
        self.profile = profile  # our offer's (RTP/AVP or RTP/SAVP), kept in re-INVITE answers
        self.negotiated: Negotiated | None = None  # from the 2xx
        self.cancel_outcome: CancelOutcome | None = None  # how a CANCEL we sent ends the call

    @property
    def caller_codec(self) -> str:
        return self.negotiated.codec if self.negotiated is not None else "PCMU"

    def use_srtp(self, srtp: SrtpKeys | None) -> None:
        """The callee's answer agreed SRTP: protect the call's RTP port with its keys."""
        self.srtp = srtp
        if srtp is not None:
            self.endpoint.secure(SrtpContext(srtp.suite, srtp.local_key, srtp.remote_key))

    @property
    def crypto_lines(self) -> list[str]:
        return [self.srtp.local_crypto.value] if self.srtp is not None else []

    def ring(self) -> None:
        return None

    async def open_media(self) -> None:
        return None  # the port was bound for the offer

    def connect_media(self, bridge: MediaSession) -> None:
        negotiated = self.negotiated
        assert negotiated is not None
        bridge.caller = RtpLeg(
            self.endpoint,
            bridge,
            payload_type=negotiated.payload_type,
            codec=negotiated.codec,
            event_payload_type=negotiated.event_payload_type,
            remote=(negotiated.remote_address, negotiated.remote_port),
            signalling_host=self.invite.destination[0] or None,
        )

    def answer(self) -> None:
        return None

    def reject(self, status: int, reason: str | None, retry_after: str | None) -> None:
        return None

    def confirm_cancel(self) -> None:
        return None

    def refuse_ringing(self) -> None:
        self._gateway.outbound.send_cancel(self._call, "canceled")

    def hang_up(self) -> None:
        self.send_bye()

    def send_bye(self) -> None:
        self._gateway.send_request(
            self.invite.bye(), self.invite.destination, own_port=True, transport=self.transport
        )

    def close_media(self) -> None:
        self._gateway.ports.release(self.endpoint)


def sip_leg(call: LiveCall) -> OutboundSipLeg:
    """The outbound SIP leg of a call this module placed."""
    leg = call.leg
    assert isinstance(leg, OutboundSipLeg)
    return leg
