"""One call this process carries: its state, its leg, media and stored record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from trunkline.calls.flow import CallFlow
from trunkline.calls.flow_events import Timer
from trunkline.calls.legs import CallLeg
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.media.session import MediaSession


@dataclass
class LiveCall:
    """One call this process carries: its state, its leg, media and stored record.

    ``flow`` is the call's one state; ``answered``, ``canceled``, ``ended`` and
    ``voicemail`` are read from it. What only one kind of leg knows (a SIP dialog,
    the INVITE we sent, the RTP port) is kept by that leg.
    """

    # The leg's own id: the SIP Call-ID, or "<carrier>:<its call id>:<call id>" for a
    # carrier media stream. The key of the gateway's table of live calls.
    leg_call_id: str
    lifecycle: CallLifecycle
    flow: CallFlow = field(default_factory=CallFlow)
    leg: CallLeg | None = None
    bridge: MediaSession | None = None
    timers: dict[Timer, asyncio.TimerHandle] = field(default_factory=dict)
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
