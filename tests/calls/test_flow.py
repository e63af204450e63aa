"""The call state machine as a table: (state, event) → (new state, commands). No I/O."""

from __future__ import annotations

from typing import Any

import pytest

from trunkline.calls import flow_commands as c
from trunkline.calls import flow_events as e
from trunkline.calls.call_state import CallState
from trunkline.calls.flow import CallFlow
from trunkline.calls.routing import RouteTarget

S = CallState
AGENT = "ws://agent.example/a"
FALLBACK = "ws://agent.example/b"
DIRECT = RouteTarget("auto_accept", None, AGENT, None, "number")
WEBHOOK = RouteTarget("webhook", None, None, "https://hook.example/in", "number")
SECOND = RouteTarget("auto_accept", None, FALLBACK, None, "identity")
LINK = object()
END_LOCAL = [c.Forget(), *c.ALL_TIMERS, c.StopMedia("local"), c.HangUpCaller()]


def flow_in(state: CallState, **fields: Any) -> CallFlow:
    values: dict[str, Any] = {"targets": (DIRECT, SECOND), "url": AGENT, "attempt": 1}
    flow = CallFlow(state=state, **(values | fields))
    if state in (S.ANSWERED, S.RECONNECTING, S.VOICEMAIL):
        flow.answered = True
    return flow


# (state, extra fields, event, new state, commands)
TABLE: list[tuple[CallState, dict[str, Any], e.Event, CallState, list[c.Command]]] = [
    # offered
    (S.OFFERED, {}, e.Routed((DIRECT,), None), S.RINGING, [c.Ring(), c.StoreStatus("ringing")]),
    (S.OFFERED, {}, e.Routed((), None), S.REJECTED, [c.Reject(603), c.Forget()]),
    (S.OFFERED, {}, e.Routed((), "hi"), S.RINGING, [c.Ring(), c.StoreStatus("ringing")]),
    # ringing: the first target
    (S.RINGING, {"next_target": 0}, e.RingingStored(), S.DIALING, [c.DialAgent(AGENT, 1)]),
    (S.RINGING, {"targets": (WEBHOOK,), "next_target": 0}, e.RingingStored(), S.RINGING,
     [c.AskWebhook(WEBHOOK)]),
    (S.RINGING, {"next_target": 2}, e.RingingStored(), S.FAILED,
     [c.Reject(480, "Agent Unavailable"), c.StoreStatus("failed", "rejected", "agent unreachable"),
      c.Forget()]),
    (S.RINGING, {"next_target": 2, "voicemail_message": "hi"}, e.RingingStored(), S.ANSWERING,
     [c.OpenMedia()]),
    # the webhook
    (S.RINGING, {"next_target": 1}, e.WebhookAnswered(AGENT), S.DIALING, [c.DialAgent(AGENT, 1)]),
    (S.RINGING, {"next_target": 1}, e.WebhookUndecided(), S.DIALING, [c.DialAgent(FALLBACK, 1)]),
    (S.RINGING, {"next_target": 1}, e.WebhookDeclined(), S.FAILED,
     [c.Reject(603), c.StoreStatus("failed", "rejected", "declined by webhook"), c.Forget()]),
    # dialling: one retry, then the fallback, then voicemail or 480
    (S.DIALING, {"next_target": 1}, e.AgentUnreachable(), S.DIALING, [c.DialAgent(AGENT, 2)]),
    (S.DIALING, {"next_target": 1, "attempt": 2}, e.AgentUnreachable(), S.DIALING,
     [c.DialAgent(FALLBACK, 1)]),
    (S.DIALING, {"next_target": 2, "attempt": 2, "voicemail_message": "hi"}, e.AgentUnreachable(),
     S.ANSWERING, [c.OpenMedia()]),
    (S.DIALING, {"next_target": 2, "attempt": 2}, e.AgentUnreachable(), S.FAILED,
     [c.Reject(480, "Agent Unavailable"), c.StoreStatus("failed", "rejected", "agent unreachable"),
      c.Forget()]),
    (S.DIALING, {}, e.AgentConnected(LINK), S.ANSWERING, [c.OpenMedia()]),
    # answering
    (S.ANSWERING, {"link": LINK}, e.MediaOpened(), S.ANSWERED,
     [c.Answer(), c.ArmTimer(e.Timer.MAX_DURATION), c.StoreStatus("answered")]),
    (S.ANSWERING, {"voicemail_message": "hi"}, e.MediaOpened(), S.VOICEMAIL,
     [c.Answer(), c.StartVoicemail("hi")]),
    (S.ANSWERING, {"link": LINK}, e.MediaPortsExhausted(), S.FAILED,
     [c.CloseAgent(LINK, 1011, "no media port"), c.Reject(503, retry_after="30"),
      c.StoreStatus("failed", "rejected", "no port"), c.Forget()]),
    # the caller goes away while a step is in flight
    (S.RINGING, {}, e.CallerCanceled(), S.CANCELING, [c.RespondCanceled()]),
    (S.DIALING, {}, e.CallerCanceled(), S.CANCELING, [c.RespondCanceled()]),
    (S.ANSWERING, {}, e.CallerCanceled(), S.CANCELING, [c.RespondCanceled()]),
    (S.DIALING, {}, e.ApiHangUp(), S.CANCELING, [c.RefuseRinging()]),
    (S.CANCELING, {}, e.AgentConnected(LINK), S.CANCELED,
     [c.CloseAgent(LINK, 1000, "canceled"), c.StoreStatus("canceled", "remote"), c.Forget()]),
    (S.CANCELING, {}, e.AgentUnreachable(), S.CANCELED,
     [c.StoreStatus("canceled", "remote"), c.Forget()]),
    (S.CANCELING, {}, e.RingingStored(), S.CANCELED,
     [c.StoreStatus("canceled", "remote"), c.Forget()]),
    (S.CANCELING, {}, e.WebhookAnswered(AGENT), S.CANCELED,
     [c.StoreStatus("canceled", "remote"), c.Forget()]),
    (S.CANCELING, {}, e.WebhookDeclined(), S.CANCELED,
     [c.StoreStatus("canceled", "remote"), c.Forget()]),
    (S.CANCELING, {}, e.WebhookUndecided(), S.CANCELED,
     [c.StoreStatus("canceled", "remote"), c.Forget()]),
    (S.CANCELING, {"link": LINK}, e.MediaOpened(), S.CANCELED,
     [c.CloseAgent(LINK, 1000, "canceled"), c.StopMedia("remote"),
      c.StoreStatus("canceled", "remote"), c.Forget()]),
    (S.CANCELING, {}, e.MediaPortsExhausted(), S.CANCELED,
     [c.StoreStatus("canceled", "remote"), c.Forget()]),
    # drain before the answer: stored now
    (S.DIALING, {}, e.Drain(), S.CANCELED, [c.StoreStatus("canceled", "local"), c.Forget()]),
    (S.CANCELED, {"link": LINK}, e.MediaOpened(), S.CANCELED,
     [c.CloseAgent(LINK, 1000, "call ended"), c.StopMedia("local")]),
    (S.CANCELED, {}, e.AgentConnected(LINK), S.CANCELED, [c.CloseAgent(LINK, 1000, "call ended")]),
    (S.OFFERED, {}, e.AgentConnected(LINK), S.OFFERED, [c.CloseAgent(LINK, 1000, "call ended")]),
    (S.RINGING, {}, e.MediaOpened(), S.RINGING, [c.StopMedia("local")]),
    (S.CANCELING, {}, e.Drain(), S.CANCELED, [c.StoreStatus("canceled", "local"), c.Forget()]),
    # answered: the ends
    (S.ANSWERED, {}, e.CallerHungUp(), S.ENDING,
     [c.Forget(), *c.ALL_TIMERS, c.StopMedia("remote"), c.StoreStatus("completed", "remote")]),
    (S.ANSWERED, {}, e.AgentStopped(), S.ENDING, [*END_LOCAL, c.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, e.ApiHangUp(), S.ENDING, [*END_LOCAL, c.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, e.AckTimedOut(), S.ENDING, [*END_LOCAL, c.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, e.Drain(), S.ENDING, [*END_LOCAL, c.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, e.MediaFailed(), S.ENDING,
     [*END_LOCAL, c.StoreStatus("completed", "local")]),
    (S.RECONNECTING, {}, e.MediaFailed(), S.ENDING,
     [*END_LOCAL, c.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, e.AgentOverflowed(), S.ENDING,
     [c.Forget(), *c.ALL_TIMERS, c.StopMedia("agent_overflow"), c.HangUpCaller(),
      c.StoreStatus("completed", "agent_overflow")]),
    (S.ANSWERED, {}, e.TimerFired(e.Timer.MAX_DURATION), S.ENDING,
     [c.Forget(), *c.ALL_TIMERS, c.StopMedia("max_duration"), c.HangUpCaller(),
      c.StoreStatus("completed", "max_duration")]),
    # the agent drops and comes back, or does not
    (S.ANSWERED, {}, e.AgentLost(), S.RECONNECTING,
     [c.Emit("agent connection lost (no close frame): redialling"),
      c.ArmTimer(e.Timer.RECONNECT_GRACE), c.Redial(AGENT)]),
    *[(S.ANSWERED, {}, e.AgentLost(code), S.RECONNECTING,
       [c.Emit(f"agent connection lost (close code {code}): redialling"),
        c.ArmTimer(e.Timer.RECONNECT_GRACE), c.Redial(AGENT)]) for code in (1006, 1011, 1012)],
    # the agent closes its socket on purpose (pipecat's EndFrame: 1000): it hung up
    *[(S.ANSWERED, {}, e.AgentLost(code), S.ENDING,
       [c.Emit(f"agent closed its socket (close code {code}): hanging up"), *END_LOCAL,
        c.StoreStatus("completed", "local")]) for code in (1000, 1001, 1005, 1008, 4000)],
    (S.RECONNECTING, {}, e.AgentReconnected(LINK), S.ANSWERED,
     [c.CancelTimer(e.Timer.RECONNECT_GRACE), c.Emit("agent reconnected"), c.AttachAgent(LINK)]),
    (S.RECONNECTING, {}, e.TimerFired(e.Timer.RECONNECT_GRACE), S.ENDING,
     [*END_LOCAL, c.StoreStatus("completed", "local")]),
    (S.RECONNECTING, {}, e.CallerHungUp(), S.ENDING,
     [c.Forget(), *c.ALL_TIMERS, c.StopMedia("remote"), c.StoreStatus("completed", "remote")]),
    # voicemail
    (S.VOICEMAIL, {}, e.GreetingPlayed(), S.VOICEMAIL, [c.ArmTimer(e.Timer.VOICEMAIL_LIMIT)]),
    (S.VOICEMAIL, {}, e.TimerFired(e.Timer.VOICEMAIL_LIMIT), S.ENDING,
     [c.Forget(), *c.ALL_TIMERS, c.StopMedia("voicemail"), c.HangUpCaller(),
      c.StoreStatus("completed", "voicemail")]),
    (S.VOICEMAIL, {}, e.CallerHungUp(), S.ENDING,
     [c.Forget(), *c.ALL_TIMERS, c.StopMedia("remote"), c.StoreStatus("completed", "voicemail")]),
    (S.ENDING, {}, e.EndStored(), S.ENDED, []),
    # outbound
    (S.RINGING, {}, e.CalleeAnswered(), S.ANSWERED, []),
    (S.CANCELING, {}, e.CalleeAnswered(), S.ANSWERED, []),
    (S.RINGING, {}, e.RingCanceled(), S.CANCELING, []),
    (S.CANCELING, {}, e.RingFailed("canceled", "local", "canceled"), S.CANCELED,
     [c.StoreStatus("canceled", "local", "canceled")]),
    (S.ANSWERED, {}, e.RingFailed("failed", "local", "agent unreachable"), S.FAILED,
     [c.StoreStatus("failed", "local", "agent unreachable")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "fields", "event", "new_state", "commands"),
    TABLE,
    ids=[f"{row[0].value}-{type(row[2]).__name__}-{i}" for i, row in enumerate(TABLE)],
)
def test_transition(
    state: CallState,
    fields: dict[str, Any],
    event: e.Event,
    new_state: CallState,
    commands: list[c.Command],
) -> None:
    flow = flow_in(state, **fields)
    assert flow.handle(event) == commands
    assert flow.state is new_state


# Events a state does not expect: no commands, the state unchanged.
ILLEGAL: list[tuple[CallState, e.Event]] = [
    (S.OFFERED, e.CallerHungUp()),
    (S.RINGING, e.Routed((DIRECT,), None)),
    (S.RINGING, e.MediaPortsExhausted()),
    (S.RINGING, e.CallerHungUp()),
    (S.RINGING, e.AgentLost()),
    (S.DIALING, e.WebhookAnswered(AGENT)),
    (S.DIALING, e.GreetingPlayed()),
    (S.ANSWERED, e.CallerCanceled()),
    (S.ANSWERED, e.RingingStored()),
    (S.ANSWERED, e.AgentUnreachable()),
    (S.ANSWERED, e.TimerFired(e.Timer.RECONNECT_GRACE)),
    (S.ANSWERED, e.RingCanceled()),
    (S.CANCELING, e.CallerCanceled()),
    (S.VOICEMAIL, e.AgentLost()),
    (S.ENDING, e.CallerHungUp()),
    (S.ENDING, e.ApiHangUp()),
    (S.ENDING, e.RingFailed("failed", "local", "x")),
    (S.ENDED, e.CallerHungUp()),
    (S.ENDED, e.TimerFired(e.Timer.MAX_DURATION)),
    (S.ENDED, e.EndStored()),
    (S.CANCELED, e.CallerCanceled()),
    (S.CANCELED, e.ApiHangUp()),
    (S.REJECTED, e.Drain()),
    (S.FAILED, e.AgentStopped()),
    (S.FAILED, e.RingFailed("failed", "local", "x")),
]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=lambda v: getattr(v, "value", None)
                         or type(v).__name__)  # fmt: skip
def test_unexpected_events_change_nothing(state: CallState, event: e.Event) -> None:
    flow = flow_in(state)
    assert flow.handle(event) == []
    assert flow.state is state


def test_every_event_type_is_covered_by_the_table() -> None:
    handled = {type(row[2]) for row in TABLE}
    assert handled == set(e.Event.__args__)  # type: ignore[attr-defined]


def test_flags_are_read_from_the_one_state() -> None:
    flow = CallFlow()
    flow.handle(e.Routed((DIRECT,), "hi"))
    flow.handle(e.RingingStored())
    assert not (flow.answered or flow.canceled or flow.ended or flow.voicemail)
    flow.handle(e.AgentUnreachable())
    flow.handle(e.AgentUnreachable())
    assert flow.state is S.ANSWERING and flow.voicemail  # the bridge records voicemail
    flow.handle(e.MediaOpened())
    assert flow.answered and flow.voicemail and not flow.ended
    flow.handle(e.CallerHungUp())
    assert flow.ended and flow.answered and flow.voicemail and not flow.canceled
    flow.handle(e.EndStored())
    assert flow.state is S.ENDED and flow.ended


def test_a_cancel_while_dialling_ends_canceled_once_the_dial_returns() -> None:
    flow = CallFlow()
    flow.handle(e.Routed((DIRECT,), None))
    flow.handle(e.RingingStored())
    assert flow.handle(e.CallerCanceled()) == [c.RespondCanceled()]
    assert flow.canceled and not flow.ended
    assert flow.handle(e.AgentConnected(LINK)) == [
        c.CloseAgent(LINK, 1000, "canceled"),
        c.StoreStatus("canceled", "remote"),
        c.Forget(),
    ]
    assert flow.canceled and flow.ended
