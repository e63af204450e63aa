"""What happens to a call, as the call state machine (``calls.flow``) hears it.

Legs, the agent link, timers and the driver's own steps report these; each is a
small frozen value, compared by value in the flow's table tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from trunkline.calls.routing import RouteTarget
from trunkline.storage.models import CallStatus, HangupReason


class Timer(enum.Enum):
    MAX_DURATION = "max_duration"
    RECONNECT_GRACE = "reconnect_grace"
    VOICEMAIL_LIMIT = "voicemail_limit"


@dataclass(frozen=True, slots=True)
class Routed:
    """The dialled number's route: targets in order, and the voicemail greeting if any."""

    targets: tuple[RouteTarget, ...]
    voicemail_message: str | None


@dataclass(frozen=True, slots=True)
class RingingStored:
    pass


@dataclass(frozen=True, slots=True)
class WebhookAnswered:
    url: str


@dataclass(frozen=True, slots=True)
class WebhookDeclined:
    pass


@dataclass(frozen=True, slots=True)
class WebhookUndecided:
    """No usable decision: failed, refused, timed out, or an answer without a URL."""


@dataclass(frozen=True, slots=True)
class AgentConnected:
    link: Any  # the agent link; opaque here


@dataclass(frozen=True, slots=True)
class AgentUnreachable:
    pass


@dataclass(frozen=True, slots=True)
class MediaOpened:
    pass


@dataclass(frozen=True, slots=True)
class MediaPortsExhausted:
    pass


@dataclass(frozen=True, slots=True)
class CallerCanceled:
    """The caller went away before the answer (SIP CANCEL, the stream closed)."""


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller ended an answered call (BYE, the stream's stop or close)."""


@dataclass(frozen=True, slots=True)
class ApiHangUp:
    pass


@dataclass(frozen=True, slots=True)
class AgentStopped:
    """The agent sent ``stop``."""


@dataclass(frozen=True, slots=True)
class AgentOverflowed:
    pass


@dataclass(frozen=True, slots=True)
class MediaFailed:
    """The call's media session failed (its frame tick raised and was stopped)."""


@dataclass(frozen=True, slots=True)
class AgentLost:
    """The agent's socket closed while the call was answered.

    ``close_code`` is the code of the agent's close frame; None when the
    connection ended without one.
    """

    close_code: int | None = None


@dataclass(frozen=True, slots=True)
class AgentReconnected:
    link: Any


@dataclass(frozen=True, slots=True)
class GreetingPlayed:
    """Voicemail: the greeting and the beep have been played; the message time starts."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer: Timer


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    pass


@dataclass(frozen=True, slots=True)
class Drain:
    """The process is stopping: end the call from our side."""


@dataclass(frozen=True, slots=True)
class EndStored:
    pass


@dataclass(frozen=True, slots=True)
class CalleeAnswered:
    """Outbound: the callee's 2xx arrived."""


@dataclass(frozen=True, slots=True)
class RingCanceled:
    """Outbound: we sent CANCEL (ring timeout or API hang-up)."""


@dataclass(frozen=True, slots=True)
class RingFailed:
    """Outbound: the call ends without a conversation (refused, no response, abandoned)."""

    status: CallStatus
    hangup_reason: HangupReason
    detail: str | None


Event = (
    Routed
    | RingingStored
    | WebhookAnswered
    | WebhookDeclined
    | WebhookUndecided
    | AgentConnected
    | AgentUnreachable
    | MediaOpened
    | MediaPortsExhausted
    | CallerCanceled
    | CallerHungUp
    | ApiHangUp
    | AgentStopped
    | AgentOverflowed
    | MediaFailed
    | AgentLost
    | AgentReconnected
    | GreetingPlayed
    | TimerFired
    | AckTimedOut
    | Drain
    | EndStored
    | CalleeAnswered
    | RingCanceled
    | RingFailed
)
