"""What the call state machine (``calls.flow``) asks to be done; the driver carries it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trunkline.calls.flow_events import Timer
from trunkline.calls.routing import RouteTarget
from trunkline.storage.models import CallStatus, HangupReason


@dataclass(frozen=True, slots=True)
class Ring:
    pass


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the caller (SIP 200 OK with the SDP answer) and start the media."""


@dataclass(frozen=True, slots=True)
class Reject:
    status: int  # the SIP status; a carrier stream is just closed
    reason: str | None = None
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class RespondCanceled:
    """The caller's leg confirms the cancel (SIP: 487 to the INVITE)."""


@dataclass(frozen=True, slots=True)
class RefuseRinging:
    """An API hang-up before the answer: the leg stops ringing (SIP: 480)."""


@dataclass(frozen=True, slots=True)
class HangUpCaller:
    pass


@dataclass(frozen=True, slots=True)
class AskWebhook:
    target: RouteTarget


@dataclass(frozen=True, slots=True)
class DialAgent:
    url: str
    attempt: int  # 1, then 2 for the retry


@dataclass(frozen=True, slots=True)
class CloseAgent:
    link: Any
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class OpenMedia:
    pass


@dataclass(frozen=True, slots=True)
class StartVoicemail:
    message: str


@dataclass(frozen=True, slots=True)
class StoreStatus:
    status: CallStatus
    hangup_reason: HangupReason | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ArmTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Redial:
    url: str


@dataclass(frozen=True, slots=True)
class AttachAgent:
    link: Any


@dataclass(frozen=True, slots=True)
class StopMedia:
    reason: HangupReason


@dataclass(frozen=True, slots=True)
class Forget:
    """The call leaves the table of live calls."""


@dataclass(frozen=True, slots=True)
class Emit:
    """A log line worth keeping (``agent reconnected``)."""

    message: str


Command = (
    Ring
    | Answer
    | Reject
    | RespondCanceled
    | RefuseRinging
    | HangUpCaller
    | AskWebhook
    | DialAgent
    | CloseAgent
    | OpenMedia
    | StartVoicemail
    | StoreStatus
    | ArmTimer
    | CancelTimer
    | Redial
    | AttachAgent
    | StopMedia
    | Forget
    | Emit
)

ALL_TIMERS = tuple(CancelTimer(timer) for timer in Timer)
