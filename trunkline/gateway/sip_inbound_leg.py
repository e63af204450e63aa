"""An inbound SIP call as the call core sees it: a ``CallLeg`` over the INVITE's dialog.

Ringing is a 180, the answer a 200 OK carrying the SDP answer (with the
INVITE's Record-Route and our Contact), refusals final responses on the
INVITE's transaction (480, 487, 503 with Retry-After, 603, 500), the media an
RTP port of the gateway's range, and our hang-up a BYE.
"""

from __future__ import annotations

from collections.abc import Callable

from trunkline.calls.legs import MediaUnavailable
from trunkline.calls.live_call import LiveCall
from trunkline.gateway.media import MediaBridge, RtpLeg
from trunkline.gateway.rtp.transport import PortsExhausted, RtpPortAllocator
from trunkline.gateway.sip.message import SipRequest, SipResponse, response_to
from trunkline.gateway.sip.sdp import Negotiated, answer_sdp
from trunkline.gateway.sip.transaction import ServerTransaction


class SipInboundLeg:
    """``respond`` sends a response in the INVITE's transaction, ``send_bye`` the call's BYE;
    ``contact`` and ``media_address`` go into the 200 OK."""

    def __init__(
        self,
        call: LiveCall,
        negotiated: Negotiated,
        *,
        respond: Callable[[ServerTransaction, SipResponse], None],
        send_bye: Callable[[LiveCall], None],
        ports: RtpPortAllocator,
        contact: str,
        media_address: str,
    ) -> None:
        self._call = call
        self._negotiated = negotiated
        self._respond = respond
        self._send_bye = send_bye
        self._ports = ports
        self._contact = contact
        self._media_address = media_address

    @property
    def caller_alaw(self) -> bool:
        return self._negotiated.payload_type == 8

    @property
    def _invite(self) -> tuple[ServerTransaction, SipRequest]:
        transaction = self._call.invite_transaction
        assert transaction is not None
        return transaction, transaction.request

    def _final(self, response: SipResponse) -> None:
        transaction, _ = self._invite
        self._respond(transaction, response)

    def ring(self) -> None:
        _, request = self._invite
        self._final(response_to(request, 180, to_tag=self._call.local_tag))

    async def open_media(self) -> None:
        try:
            self._call.endpoint = await self._ports.open()
        except PortsExhausted:
            raise MediaUnavailable from None

    def connect_media(self, bridge: MediaBridge) -> None:
        endpoint, negotiated = self._call.endpoint, self._negotiated
        assert endpoint is not None
        bridge.caller = RtpLeg(
            endpoint,
            bridge,
            payload_type=negotiated.payload_type,
            event_payload_type=negotiated.event_payload_type,
            remote=(negotiated.remote_address, negotiated.remote_port),
            signalling_host=self._call.source[0] or None,
        )

    def answer(self) -> None:
        call = self._call
        _, request = self._invite
        assert call.endpoint is not None
        ok = response_to(request, 200, to_tag=call.local_tag)
        for route in call.route_set:
            ok.headers.add("Record-Route", route)
        ok.headers.add("Contact", self._contact)
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = answer_sdp(self._negotiated, self._media_address, call.endpoint.port)
        self._final(ok)

    def reject(self, status: int, reason: str | None, retry_after: str | None) -> None:
        _, request = self._invite
        response = response_to(request, status, reason, to_tag=self._call.local_tag)
        if retry_after is not None:
            response.headers.add("Retry-After", retry_after)
        self._final(response)

    def confirm_cancel(self) -> None:
        _, request = self._invite
        self._final(response_to(request, 487, to_tag=self._call.local_tag))

    def refuse_ringing(self) -> None:
        _, request = self._invite
        self._final(response_to(request, 480, to_tag=self._call.local_tag))

    def hang_up(self) -> None:
        self._send_bye(self._call)

    def close_media(self) -> None:
        if self._call.endpoint is not None:
            self._ports.release(self._call.endpoint)
