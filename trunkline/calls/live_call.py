"""One call this process carries: its state, its leg, media and stored record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from trunkline.calls.flow import CallFlow
from trunkline.calls.flow_events import Timer
from trunkline.calls.legs import CallLeg
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.gateway.rtp.transport import RtpEndpoint
from trunkline.gateway.sip.dialog import InboundDialog
from trunkline.gateway.sip.uac import OutboundInvite
from trunkline.media.session import MediaSession
from trunkline.storage.models import CallStatus, HangupReason

SipAddress = tuple[str, int]
CancelOutcome = tuple[CallStatus, HangupReason, str]  # status, hangup reason, failure detail


@dataclass
class LiveCall:
    """One call this process carries: its state, its leg, media and stored record.

    ``flow`` is the call's one state; ``answered``, ``canceled``, ``ended`` and
    ``voicemail`` are read from it.
    """

    # The leg's own id: the SIP Call-ID, or "<carrier>:<its call id>:<call id>" for a
    # carrier media stream. The key of the gateway's table of live calls.
    leg_call_id: str
    lifecycle: CallLifecycle
    flow: CallFlow = field(default_factory=CallFlow)
    leg: CallLeg | None = None
    dialog: InboundDialog | None = None  # inbound over SIP: the INVITE we answer, its dialog
    outbound: OutboundInvite | None = None  # outbound: the INVITE we sent, then its dialog
    endpoint: RtpEndpoint | None = None
    bridge: MediaSession | None = None
    timers: dict[Timer, asyncio.TimerHandle] = field(default_factory=dict)
    cancel_outcome: CancelOutcome | None = None  # outbound: how a CANCEL we sent ends it
    agent_protocol: str = "inkbox"  # the number's options when the call began
    agent_audio: str = "mulaw8k"
    recording_enabled: bool = True

    @property
    def answered(self) -> bool:
        return self.flow.answered

    @property
    def canceled(self) -> bool:
        return self.flow.canceled

    @property
    def ended(self) -> bool:
        return self.flow.ended

    @property
    def voicemail(self) -> bool:
        """No agent could be reached: the caller leaves a message."""
        return self.flow.voicemail

    @property
    def far_end(self) -> SipAddress | None:
        """Where the call's SIP signalling comes from: the INVITE's source or the dialled trunk."""
        if self.dialog is not None:
            return self.dialog.source
        if self.outbound is not None:
            return self.outbound.destination
        return None
