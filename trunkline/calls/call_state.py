"""The states of one call's flow (``calls.flow.CallFlow``) and the groups it tests them by."""

from __future__ import annotations

import enum


class CallState(enum.Enum):
    OFFERED = "offered"  # the call is stored as initiated; the caller has heard nothing final
    RINGING = "ringing"  # the caller hears ringing while the route's targets are tried
    DIALING = "dialing"  # an agent URL is known and its WebSocket is being dialled
    ANSWERING = "answering"  # an agent (or voicemail) takes it: media is being opened
    ANSWERED = "answered"  # talking to the agent
    RECONNECTING = "reconnecting"  # answered, the agent's socket dropped, redialling
    VOICEMAIL = "voicemail"  # answered without an agent: the caller leaves a message
    CANCELING = "canceling"  # the caller went away while a step was in flight
    ENDING = "ending"  # media stopping, the end being stored
    ENDED = "ended"  # completed
    CANCELED = "canceled"
    REJECTED = "rejected"  # refused outright by the route (no agent, no voicemail)
    FAILED = "failed"  # declined, unreachable, no media port


TERMINAL = frozenset({CallState.ENDED, CallState.CANCELED, CallState.REJECTED, CallState.FAILED})
TALKING = frozenset({CallState.ANSWERED, CallState.RECONNECTING, CallState.VOICEMAIL})
BEFORE_ANSWER = frozenset(
    {CallState.OFFERED, CallState.RINGING, CallState.DIALING, CallState.ANSWERING}
)
