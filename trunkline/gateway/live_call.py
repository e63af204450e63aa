"""One call this process carries: its SIP dialog, media and stored record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from trunkline.gateway.call_lifecycle import CallLifecycle
from trunkline.gateway.rtp.transport import RtpEndpoint
from trunkline.gateway.sip.dialog import InboundDialog
from trunkline.gateway.sip.uac import OutboundInvite
from trunkline.media.session import MediaSession
from trunkline.storage.models import CallStatus, HangupReason

SipAddress = tuple[str, int]
CancelOutcome = tuple[CallStatus, HangupReason, str]  # status, hangup reason, failure detail


class CarrierHangup(Protocol):
    def hang_up(self) -> None:
        """End the carrier's media stream (trunkline's side hung up)."""
        ...


@dataclass
class LiveCall:
    """One call this process carries: its dialog, media and stored record."""

    sip_call_id: str  # the SIP Call-ID; for a carrier media stream, "<carrier>:<its call id>"
    lifecycle: CallLifecycle
    dialog: InboundDialog | None = None  # inbound over SIP: the INVITE we answer, its dialog
    carrier_stream: CarrierHangup | None = None  # set for carrier media-stream calls
    outbound: OutboundInvite | None = None  # outbound: the INVITE we sent, then its dialog
    endpoint: RtpEndpoint | None = None
    bridge: MediaSession | None = None
    answered: bool = False
    canceled: bool = False
    ended: bool = False
    reconnect_timer: asyncio.TimerHandle | None = None
    duration_timer: asyncio.TimerHandle | None = None  # ends the call at the duration cap
    cancel_outcome: CancelOutcome | None = None
    agent_protocol: str = "inkbox"  # the number's options when the call began
    agent_audio: str = "mulaw8k"
    recording_enabled: bool = True  # outbound: how a CANCEL we sent ends it
    voicemail: bool = False  # no agent could be reached: the caller leaves a message

    @property
    def far_end(self) -> SipAddress | None:
        """Where the call's SIP signalling comes from: the INVITE's source or the dialled trunk."""
        if self.dialog is not None:
            return self.dialog.source
        if self.outbound is not None:
            return self.outbound.destination
        return None
