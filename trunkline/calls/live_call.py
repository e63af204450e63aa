"""One call this process carries: its state, its leg, media and stored record."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

from trunkline.calls.flow import CallFlow
from trunkline.calls.flow_events import Timer
from trunkline.calls.legs import CallLeg
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.gateway.media import MediaBridge
from trunkline.gateway.rtp.transport import RtpEndpoint
from trunkline.gateway.sip.message import SipRequest, SipResponse
from trunkline.gateway.sip.transaction import ServerTransaction
from trunkline.gateway.sip.uac import OutboundInvite
from trunkline.storage.models import CallStatus, HangupReason

SipAddress = tuple[str, int]
CancelOutcome = tuple[CallStatus, HangupReason, str]  # status, hangup reason, failure detail


def ignore_response(response: SipResponse) -> None:
    return None


def ignore_timeout() -> None:
    return None


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
    invite: SipRequest | None = None  # None for calls that arrive as carrier media streams
    source: SipAddress = ("", 0)
    local_tag: str = ""
    remote_from: str = ""
    local_to: str = ""
    remote_target: SipAddress = ("", 0)
    route_set: list[str] = field(default_factory=list)
    invite_transaction: ServerTransaction | None = None  # inbound: the INVITE we answer
    outbound: OutboundInvite | None = None  # outbound: the INVITE we sent, then its dialog
    local_cseq: int = field(default_factory=lambda: secrets.randbelow(2**20) + 1)
    endpoint: RtpEndpoint | None = None
    bridge: MediaBridge | None = None
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
