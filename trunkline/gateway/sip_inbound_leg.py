"""An inbound SIP call as the call core sees it: a ``CallLeg`` over its ``InboundDialog``.

Ringing is a 180, the answer the dialog's 200 OK carrying the SDP answer,
refusals final responses on the INVITE's transaction (480, 487, 503 with
Retry-After, 603, 500), the media an RTP port of the gateway's range, and our
hang-up the dialog's BYE. The dialog builds the messages; this sends them.
On an SRTP call (SDES keys negotiated over TLS) the RTP port protects and
unprotects with the call's keys and the answer carries our ``a=crypto`` line.
The leg keeps the call's SIP state (its dialog, its RTP port), where the
gateway's request handling finds it.
"""

from __future__ import annotations

from collections.abc import Callable

from trunkline.calls.legs import MediaUnavailable
from trunkline.gateway.rtp.leg import RtpLeg
from trunkline.gateway.rtp.srtp import SrtpContext
from trunkline.gateway.rtp.transport import PortsExhausted, RtpEndpoint, RtpPortAllocator
from trunkline.gateway.sip.dialog import InboundDialog
from trunkline.gateway.sip.message import SipResponse
from trunkline.gateway.sip.sdes import PLAIN_PROFILE, SECURE_PROFILE, SrtpKeys
from trunkline.gateway.sip.sdp import Negotiated, answer_sdp
from trunkline.gateway.sip.transaction import ServerTransaction
from trunkline.media.session import MediaSession


class SipInboundLeg:
    """``respond`` sends a response in a server transaction, ``send_bye`` the dialog's BYE;
    ``contact`` and ``media_address`` go into the 200 OK."""

    def __init__(
        self,
        dialog: InboundDialog,
        negotiated: Negotiated,
        *,
        respond: Callable[[ServerTransaction, SipResponse], None],
        send_bye: Callable[[InboundDialog], None],
        ports: RtpPortAllocator,
        contact: str,
        media_address: str,
        srtp: SrtpKeys | None = None,
        profile: str = PLAIN_PROFILE,
    ) -> None:
        self.dialog = dialog  # the INVITE we answer, then its dialog
        self.endpoint: RtpEndpoint | None = None  # the call's RTP port, once media is opened
        self._negotiated = negotiated
        self._respond = respond
        self._send_bye = send_bye
        self._ports = ports
        self._contact = contact
        self._media_address = media_address
        self.srtp = srtp
        # The answer's profile is the offer's: RTP/SAVP, or RTP/AVP (best-effort SRTP too).
        self.profile = SECURE_PROFILE if profile.upper() == SECURE_PROFILE else PLAIN_PROFILE

    @property
    def caller_codec(self) -> str:
        return self._negotiated.codec

    def _to_invite(self, response: SipResponse) -> None:
        self._respond(self.dialog.transaction, response)

    def ring(self) -> None:
        self._to_invite(self.dialog.provisional(180))

    async def open_media(self) -> None:
        negotiated = self._negotiated
        source = (negotiated.remote_address, negotiated.remote_port)
        try:
            self.endpoint = await self._ports.open(source, negotiated.ssrc)
        except PortsExhausted:
            raise MediaUnavailable from None
        srtp = self.srtp
        if srtp is not None:
            self.endpoint.secure(SrtpContext(srtp.suite, srtp.local_key, srtp.remote_key))

    def connect_media(self, bridge: MediaSession) -> None:
        endpoint, negotiated = self.endpoint, self._negotiated
        assert endpoint is not None
        bridge.caller = RtpLeg(
            endpoint,
            bridge,
            payload_type=negotiated.payload_type,
            codec=negotiated.codec,
            event_payload_type=negotiated.event_payload_type,
            remote=(negotiated.remote_address, negotiated.remote_port),
            signalling_host=self.dialog.source[0] or None,
        )

    def answer(self) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        sdp = answer_sdp(
            self._negotiated,
            self._media_address,
            endpoint.port,
            profile=self.profile,
            crypto=self.crypto_lines,
        )
        self._to_invite(self.dialog.answer(sdp, self._contact))

    @property
    def crypto_lines(self) -> list[str]:
        """Our ``a=crypto`` line on an SRTP call (none on plain RTP)."""
        return [self.srtp.local_crypto.value] if self.srtp is not None else []

    def reject(self, status: int, reason: str | None, retry_after: str | None) -> None:
        headers = {"Retry_After": retry_after} if retry_after is not None else {}
        self._to_invite(self.dialog.reject(status, reason, **headers))

    def confirm_cancel(self) -> None:
        self._to_invite(self.dialog.reject(487))

    def refuse_ringing(self) -> None:
        self._to_invite(self.dialog.reject(480))

    def hang_up(self) -> None:
        self._send_bye(self.dialog)

    def close_media(self) -> None:
        if self.endpoint is not None:
            self._ports.release(self.endpoint)
