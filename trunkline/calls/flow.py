"""The life of one call as a state machine, without I/O: events in, commands out.

``CallFlow`` holds the call's one state. A leg or the driver reports what
happened (an event: the route is known, the webhook answered, the agent
connected, the caller hung up, a timer fired …) and gets back what to do
(commands: answer or reject the caller, dial an agent, open media, store a
status, arm a timer …). Nothing here awaits, sleeps or touches a socket, so
every transition is tested as a table (tests/calls/test_flow.py).

Inbound::

    offered ─route─→ ringing ─webhook answer─→ dialing ─agent─→ answering ─media─→ answered
       │               │  └─────────── no agent, voicemail ───→ answering ─media─→ voicemail
       └→ rejected     └→ failed (declined, unreachable, no port)      answered ⇄ reconnecting
    ringing | dialing | answering ─cancel─→ canceling ─step done─→ canceled
    answered | reconnecting | voicemail ─hang-up, timer, agent stop─→ ending ─stored─→ ended

The agent's socket closing with a close frame (1000, 1001 …) is the agent
hanging up; only a failed connection (no close frame, 1011, 1012) is
redialled (``agent.close_codes``).

Outbound calls enter at ``ringing`` (the INVITE is out) and move with
``CalleeAnswered``/``RingCanceled``/``RingFailed``.

An event a state does not expect (a BYE after the end, a second cancel)
returns no commands and leaves the state as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trunkline.agent.close_codes import agent_hung_up, describe_close
from trunkline.calls.call_state import BEFORE_ANSWER, TALKING, TERMINAL, CallState
from trunkline.calls.flow_commands import (
    ALL_TIMERS,
    Answer,
    ArmTimer,
    AskWebhook,
    AttachAgent,
    CancelTimer,
    CloseAgent,
    Command,
    DialAgent,
    Emit,
    Forget,
    HangUpCaller,
    OpenMedia,
    Redial,
    RefuseRinging,
    Reject,
    RespondCanceled,
    Ring,
    StartVoicemail,
    StopMedia,
    StoreStatus,
)
from trunkline.calls.flow_events import (
    AckTimedOut,
    AgentConnected,
    AgentLost,
    AgentOverflowed,
    AgentReconnected,
    AgentStopped,
    AgentUnreachable,
    ApiHangUp,
    CalleeAnswered,
    CallerCanceled,
    CallerHungUp,
    Drain,
    EndStored,
    Event,
    GreetingPlayed,
    MediaFailed,
    MediaOpened,
    MediaPortsExhausted,
    RingCanceled,
    RingFailed,
    RingingStored,
    Routed,
    Timer,
    TimerFired,
    WebhookAnswered,
    WebhookDeclined,
    WebhookUndecided,
)
from trunkline.calls.routing import RouteTarget
from trunkline.storage.models import HangupReason

MAX_DIAL_ATTEMPTS = 2  # each agent URL: one try and one retry


@dataclass
class CallFlow:
    """One call's state and the little it must remember to choose the next step."""

    state: CallState = CallState.OFFERED
    targets: tuple[RouteTarget, ...] = ()
    voicemail_message: str | None = None
    next_target: int = 0
    url: str | None = None  # the agent URL being dialled, then the one that answered
    attempt: int = 0
    link: Any = None  # the agent link that answered, until the call is answered
    answered: bool = False  # reached answered (or voicemail); kept through the end
    hangup_reason: HangupReason | None = None
    _handlers: dict[type, Callable[[Any], list[Command]]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._handlers = {
            Routed: self._routed,
            RingingStored: self._ringing_stored,
            WebhookAnswered: self._webhook_answered,
            WebhookDeclined: self._webhook_declined,
            WebhookUndecided: self._webhook_undecided,
            AgentConnected: self._agent_connected,
            AgentUnreachable: self._agent_unreachable,
            MediaOpened: self._media_opened,
            MediaPortsExhausted: self._media_ports_exhausted,
            CallerCanceled: self._caller_canceled,
            ApiHangUp: self._api_hang_up,
            CallerHungUp: lambda _: self._end("remote", hang_up_caller=False),
            AgentStopped: lambda _: self._end("local", hang_up_caller=True),
            AgentOverflowed: lambda _: self._end("agent_overflow", hang_up_caller=True),
            MediaFailed: lambda _: self._end("local", hang_up_caller=True),
            AckTimedOut: lambda _: self._end("local", hang_up_caller=True),
            Drain: self._drain,
            AgentLost: self._agent_lost,
            AgentReconnected: self._agent_reconnected,
            GreetingPlayed: self._greeting_played,
            TimerFired: self._timer_fired,
            EndStored: self._end_stored,
            CalleeAnswered: self._callee_answered,
            RingCanceled: self._ring_canceled,
            RingFailed: self._ring_failed,
        }

    @classmethod
    def outbound(cls) -> CallFlow:
        """An outbound call: the INVITE is out, the callee is being rung."""
        return cls(state=CallState.RINGING)

    # -- what the rest of the gateway reads -------------------------------------------
    @property
    def canceled(self) -> bool:
        """The caller (or an API hang-up) went away before the answer."""
        return self.state in (CallState.CANCELING, CallState.CANCELED)

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL or self.state is CallState.ENDING

    @property
    def voicemail(self) -> bool:
        """Answered (or being answered) without an agent: the caller leaves a message."""
        if self.state is CallState.ANSWERING:
            return self.link is None
        return self.state is CallState.VOICEMAIL or (
            self.state in (CallState.ENDING, CallState.ENDED) and self.hangup_reason == "voicemail"
        )

    def handle(self, event: Event) -> list[Command]:
        """Apply ``event``; the commands to carry out, in order (none for an unexpected event)."""
        return self._handlers[type(event)](event)

    # -- ringing -------------------------------------------------------------------------
    def _routed(self, event: Routed) -> list[Command]:
        if self.state is not CallState.OFFERED:
            return []
        self.targets = event.targets
        self.voicemail_message = event.voicemail_message
        if not event.targets and event.voicemail_message is None:
            self.state = CallState.REJECTED
            return [Reject(603), Forget()]
        self.state = CallState.RINGING
        return [Ring(), StoreStatus("ringing")]

    def _ringing_stored(self, event: RingingStored) -> list[Command]:
        if self.state is CallState.CANCELING:
            return self._settle_cancel()
        if self.state is not CallState.RINGING:
            return []
        return self._try_next_target()

    def _try_next_target(self) -> list[Command]:
        """The next route target, or voicemail, or the 480 when none is left."""
        while self.next_target < len(self.targets):
            target = self.targets[self.next_target]
            self.next_target += 1
            if target.action == "auto_accept":
                if target.client_websocket_url:
                    return self._dial(target.client_websocket_url)
            elif target.incoming_call_webhook_url:
                self.state = CallState.RINGING
                return [AskWebhook(target)]
        if self.voicemail_message is not None:
            self.state = CallState.ANSWERING
            self.link = None
            return [OpenMedia()]
        self.state = CallState.FAILED
        return [
            Reject(480, "Agent Unavailable"),
            StoreStatus("failed", "rejected", "agent unreachable"),
            Forget(),
        ]

    def _dial(self, url: str) -> list[Command]:
        self.state = CallState.DIALING
        self.url, self.attempt = url, 1
        return [DialAgent(url, 1)]

    def _webhook_answered(self, event: WebhookAnswered) -> list[Command]:
        if self.state is CallState.CANCELING:
            return self._settle_cancel()
        if self.state is not CallState.RINGING:
            return []
        return self._dial(event.url)

    def _webhook_undecided(self, event: WebhookUndecided) -> list[Command]:
        if self.state is CallState.CANCELING:
            return self._settle_cancel()
        if self.state is not CallState.RINGING:
            return []
        return self._try_next_target()

    def _webhook_declined(self, event: WebhookDeclined) -> list[Command]:
        if self.state is CallState.CANCELING:
            return self._settle_cancel()
        if self.state is not CallState.RINGING:
            return []
        self.state = CallState.FAILED
        return [Reject(603), StoreStatus("failed", "rejected", "declined by webhook"), Forget()]

    def _agent_connected(self, event: AgentConnected) -> list[Command]:
        if self.state is CallState.CANCELING:
            return [CloseAgent(event.link, 1000, "canceled"), *self._settle_cancel()]
        if self.state is not CallState.DIALING:
            return [CloseAgent(event.link, 1000, "call ended")]
        self.state = CallState.ANSWERING
        self.link = event.link
        return [OpenMedia()]

    def _agent_unreachable(self, event: AgentUnreachable) -> list[Command]:
        if self.state is CallState.CANCELING:
            return self._settle_cancel()
        if self.state is not CallState.DIALING:
            return []
        if self.attempt < MAX_DIAL_ATTEMPTS and self.url is not None:
            self.attempt += 1
            return [DialAgent(self.url, self.attempt)]
        return self._try_next_target()

    def _media_opened(self, event: MediaOpened) -> list[Command]:
        if self.state is CallState.CANCELING:
            return [*self._close_waiting_agent("canceled"), StopMedia("remote"),
                    *self._settle_cancel()]  # fmt: skip
        if self.state is not CallState.ANSWERING:  # ended meanwhile (a drain)
            return [*self._close_waiting_agent("call ended"), StopMedia("local")]
        self.answered = True
        if self.link is None:
            self.state = CallState.VOICEMAIL
            return [Answer(), StartVoicemail(self.voicemail_message or "")]
        self.state = CallState.ANSWERED
        self.link = None
        return [Answer(), ArmTimer(Timer.MAX_DURATION), StoreStatus("answered")]

    def _media_ports_exhausted(self, event: MediaPortsExhausted) -> list[Command]:
        if self.state is CallState.CANCELING:
            return [*self._close_waiting_agent("canceled"), *self._settle_cancel()]
        if self.state is not CallState.ANSWERING:
            return []
        self.state = CallState.FAILED
        return [
            *self._close_waiting_agent("no media port", code=1011),
            Reject(503, retry_after="30"),
            StoreStatus("failed", "rejected", "no port"),
            Forget(),
        ]

    def _close_waiting_agent(self, reason: str, code: int = 1000) -> list[Command]:
        link, self.link = self.link, None
        return [CloseAgent(link, code, reason)] if link is not None else []

    # -- the caller goes away before the answer --------------------------------------
    def _caller_canceled(self, event: CallerCanceled) -> list[Command]:
        if self.state not in (CallState.RINGING, CallState.DIALING, CallState.ANSWERING):
            return []
        self.state = CallState.CANCELING
        return [RespondCanceled()]

    def _api_hang_up(self, event: ApiHangUp) -> list[Command]:
        if self.state in (CallState.RINGING, CallState.DIALING, CallState.ANSWERING):
            self.state = CallState.CANCELING
            return [RefuseRinging()]
        return self._end("local", hang_up_caller=True)

    def _settle_cancel(self) -> list[Command]:
        """The step in flight when the caller went away is done: the call ends canceled."""
        self.state = CallState.CANCELED
        return [StoreStatus("canceled", "remote"), Forget()]

    # -- answered ----------------------------------------------------------------------
    def _agent_lost(self, event: AgentLost) -> list[Command]:
        if self.state is not CallState.ANSWERED:
            return []
        how = describe_close(event.close_code)
        if agent_hung_up(event.close_code):  # closed on purpose: the agent hung up
            return [Emit(f"agent closed its socket ({how}): hanging up"),
                    *self._end("local", hang_up_caller=True)]  # fmt: skip
        if self.url is None:
            return []
        self.state = CallState.RECONNECTING
        return [Emit(f"agent connection lost ({how}): redialling"),
                ArmTimer(Timer.RECONNECT_GRACE), Redial(self.url)]  # fmt: skip

    def _agent_reconnected(self, event: AgentReconnected) -> list[Command]:
        if self.state is not CallState.RECONNECTING:
            return [CloseAgent(event.link, 1000, "call ended")]
        self.state = CallState.ANSWERED
        return [CancelTimer(Timer.RECONNECT_GRACE), Emit("agent reconnected"),
                AttachAgent(event.link)]  # fmt: skip

    def _greeting_played(self, event: GreetingPlayed) -> list[Command]:
        if self.state is not CallState.VOICEMAIL:
            return []
        return [ArmTimer(Timer.VOICEMAIL_LIMIT)]

    def _timer_fired(self, event: TimerFired) -> list[Command]:
        if event.timer is Timer.MAX_DURATION:
            return self._end("max_duration", hang_up_caller=True)
        if event.timer is Timer.VOICEMAIL_LIMIT:
            return self._end("voicemail", hang_up_caller=True)
        if self.state is not CallState.RECONNECTING:
            return []
        return self._end("local", hang_up_caller=True)

    def _drain(self, event: Drain) -> list[Command]:
        if self.state in BEFORE_ANSWER or self.state is CallState.CANCELING:
            # Stored now; the step in flight finds the call over and cleans up after itself.
            self.state = CallState.CANCELED
            return [StoreStatus("canceled", "local"), Forget()]
        return self._end("local", hang_up_caller=True)

    # -- the end -------------------------------------------------------------------------
    def _end(self, reason: HangupReason, *, hang_up_caller: bool) -> list[Command]:
        if self.state not in TALKING:
            return []
        voicemail = self.state is CallState.VOICEMAIL
        self.state = CallState.ENDING
        self.hangup_reason = "voicemail" if voicemail else reason
        commands: list[Command] = [Forget(), *ALL_TIMERS, StopMedia(reason)]
        if hang_up_caller:
            commands.append(HangUpCaller())
        commands.append(StoreStatus("completed", self.hangup_reason))
        return commands

    def _end_stored(self, event: EndStored) -> list[Command]:
        if self.state is not CallState.ENDING:
            return []
        self.state = CallState.ENDED
        return []

    # -- outbound ----------------------------------------------------------------------
    def _callee_answered(self, event: CalleeAnswered) -> list[Command]:
        if self.state not in (CallState.RINGING, CallState.CANCELING):
            return []
        self.answered = True
        self.state = CallState.ANSWERED
        return []

    def _ring_canceled(self, event: RingCanceled) -> list[Command]:
        if self.state is not CallState.RINGING:
            return []
        self.state = CallState.CANCELING
        return []

    def _ring_failed(self, event: RingFailed) -> list[Command]:
        if self.state in TERMINAL or self.state is CallState.ENDING:
            return []
        self.answered = False  # never bridged: not a completed conversation
        self.state = CallState.CANCELED if event.status == "canceled" else CallState.FAILED
        return [StoreStatus(event.status, event.hangup_reason, event.detail)]
