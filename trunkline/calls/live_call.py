"""One call this process carries: its SIP dialog, media and stored record."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from trunkline.calls.lifecycle import CallLifecycle
from trunkline.gateway.media import MediaBridge
from trunkline.gateway.rtp.transport import RtpEndpoint
from trunkline.gateway.sip.message import SipRequest, SipResponse
from trunkline.gateway.sip.transaction import ServerTransaction
from trunkline.gateway.sip.uac import OutboundInvite
from trunkline.storage.models import CallStatus, HangupReason

SipAddress = tuple[str, int]
CancelOutcome = tuple[CallStatus, HangupReason, str]  # status, hangup reason, failure detail


class CarrierHangup(Protocol):
    def hang_up(self) -> None:
        """End the carrier's media stream (trunkline's side hung up)."""
        ...


def ignore_response(response: SipResponse) -> None:
    return None


def ignore_timeout() -> None:
    return None


@dataclass
class LiveCall:
    """One call this process carries: its dialog, media and stored record."""

    sip_call_id: str  # the SIP Call-ID; for a carrier media stream, "<carrier>:<its call id>"
    lifecycle: CallLifecycle
    invite: SipRequest | None = None  # None for calls that arrive as carrier media streams
    source: SipAddress = ("", 0)
    local_tag: str = ""
    remote_from: str = ""
    local_to: str = ""
    remote_target: SipAddress = ("", 0)
    route_set: list[str] = field(default_factory=list)
    carrier_stream: CarrierHangup | None = None  # set for carrier media-stream calls
    invite_transaction: ServerTransaction | None = None  # inbound: the INVITE we answer
    outbound: OutboundInvite | None = None  # outbound: the INVITE we sent, then its dialog
    local_cseq: int = field(default_factory=lambda: secrets.randbelow(2**20) + 1)
    endpoint: RtpEndpoint | None = None
    bridge: MediaBridge | None = None
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
