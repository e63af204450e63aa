"""The call state machine as a table: (state, event) → (new state, commands). No I/O."""

from __future__ import annotations

from typing import Any

import pytest

from trunkline.calls import flow as f
from trunkline.calls.flow import CallFlow, CallState
from trunkline.calls.routing import RouteTarget

S = CallState
AGENT = "ws://agent.example/a"
FALLBACK = "ws://agent.example/b"
DIRECT = RouteTarget("auto_accept", None, AGENT, None, "number")
WEBHOOK = RouteTarget("webhook", None, None, "https://hook.example/in", "number")
SECOND = RouteTarget("auto_accept", None, FALLBACK, None, "identity")
LINK = object()
END_LOCAL = [f.Forget(), *f.ALL_TIMERS, f.StopMedia("local"), f.HangUpCaller()]


def flow_in(state: CallState, **fields: Any) -> CallFlow:
    values: dict[str, Any] = {"targets": (DIRECT, SECOND), "url": AGENT, "attempt": 1}
    flow = CallFlow(state=state, **(values | fields))
    if state in (S.ANSWERED, S.RECONNECTING, S.VOICEMAIL):
        flow.answered = True
    return flow


# (state, extra fields, event, new state, commands)
TABLE: list[tuple[CallState, dict[str, Any], f.Event, CallState, list[f.Command]]] = [
    # offered
    (S.OFFERED, {}, f.Routed((DIRECT,), None), S.RINGING, [f.Ring(), f.StoreStatus("ringing")]),
    (S.OFFERED, {}, f.Routed((), None), S.REJECTED, [f.Reject(603), f.Forget()]),
    (S.OFFERED, {}, f.Routed((), "hi"), S.RINGING, [f.Ring(), f.StoreStatus("ringing")]),
    # ringing: the first target
    (S.RINGING, {"next_target": 0}, f.RingingStored(), S.DIALING, [f.DialAgent(AGENT, 1)]),
    (S.RINGING, {"targets": (WEBHOOK,), "next_target": 0}, f.RingingStored(), S.RINGING,
     [f.AskWebhook(WEBHOOK)]),
    (S.RINGING, {"next_target": 2}, f.RingingStored(), S.FAILED,
     [f.Reject(480, "Agent Unavailable"), f.StoreStatus("failed", "rejected", "agent unreachable"),
      f.Forget()]),
    (S.RINGING, {"next_target": 2, "voicemail_message": "hi"}, f.RingingStored(), S.ANSWERING,
     [f.OpenMedia()]),
    # the webhook
    (S.RINGING, {"next_target": 1}, f.WebhookAnswered(AGENT), S.DIALING, [f.DialAgent(AGENT, 1)]),
    (S.RINGING, {"next_target": 1}, f.WebhookUndecided(), S.DIALING, [f.DialAgent(FALLBACK, 1)]),
    (S.RINGING, {"next_target": 1}, f.WebhookDeclined(), S.FAILED,
     [f.Reject(603), f.StoreStatus("failed", "rejected", "declined by webhook"), f.Forget()]),
    # dialling: one retry, then the fallback, then voicemail or 480
    (S.DIALING, {"next_target": 1}, f.AgentUnreachable(), S.DIALING, [f.DialAgent(AGENT, 2)]),
    (S.DIALING, {"next_target": 1, "attempt": 2}, f.AgentUnreachable(), S.DIALING,
     [f.DialAgent(FALLBACK, 1)]),
    (S.DIALING, {"next_target": 2, "attempt": 2, "voicemail_message": "hi"}, f.AgentUnreachable(),
     S.ANSWERING, [f.OpenMedia()]),
    (S.DIALING, {"next_target": 2, "attempt": 2}, f.AgentUnreachable(), S.FAILED,
     [f.Reject(480, "Agent Unavailable"), f.StoreStatus("failed", "rejected", "agent unreachable"),
      f.Forget()]),
    (S.DIALING, {}, f.AgentConnected(LINK), S.ANSWERING, [f.OpenMedia()]),
    # answering
    (S.ANSWERING, {"link": LINK}, f.MediaOpened(), S.ANSWERED,
     [f.Answer(), f.ArmTimer(f.Timer.MAX_DURATION), f.StoreStatus("answered")]),
    (S.ANSWERING, {"voicemail_message": "hi"}, f.MediaOpened(), S.VOICEMAIL,
     [f.Answer(), f.StartVoicemail("hi")]),
    (S.ANSWERING, {"link": LINK}, f.MediaPortsExhausted(), S.FAILED,
     [f.CloseAgent(LINK, 1011, "no media port"), f.Reject(503, retry_after="30"),
      f.StoreStatus("failed", "rejected", "no port"), f.Forget()]),
    # the caller goes away while a step is in flight
    (S.RINGING, {}, f.CallerCanceled(), S.CANCELING, [f.RespondCanceled()]),
    (S.DIALING, {}, f.CallerCanceled(), S.CANCELING, [f.RespondCanceled()]),
    (S.ANSWERING, {}, f.CallerCanceled(), S.CANCELING, [f.RespondCanceled()]),
    (S.DIALING, {}, f.ApiHangUp(), S.CANCELING, [f.RefuseRinging()]),
    (S.CANCELING, {}, f.AgentConnected(LINK), S.CANCELED,
     [f.CloseAgent(LINK, 1000, "canceled"), f.StoreStatus("canceled", "remote"), f.Forget()]),
    (S.CANCELING, {}, f.AgentUnreachable(), S.CANCELED,
     [f.StoreStatus("canceled", "remote"), f.Forget()]),
    (S.CANCELING, {}, f.RingingStored(), S.CANCELED,
     [f.StoreStatus("canceled", "remote"), f.Forget()]),
    (S.CANCELING, {}, f.WebhookAnswered(AGENT), S.CANCELED,
     [f.StoreStatus("canceled", "remote"), f.Forget()]),
    (S.CANCELING, {}, f.WebhookDeclined(), S.CANCELED,
     [f.StoreStatus("canceled", "remote"), f.Forget()]),
    (S.CANCELING, {}, f.WebhookUndecided(), S.CANCELED,
     [f.StoreStatus("canceled", "remote"), f.Forget()]),
    (S.CANCELING, {"link": LINK}, f.MediaOpened(), S.CANCELED,
     [f.CloseAgent(LINK, 1000, "canceled"), f.StopMedia("remote"),
      f.StoreStatus("canceled", "remote"), f.Forget()]),
    (S.CANCELING, {}, f.MediaPortsExhausted(), S.CANCELED,
     [f.StoreStatus("canceled", "remote"), f.Forget()]),
    # drain before the answer: stored now
    (S.DIALING, {}, f.Drain(), S.CANCELED, [f.Forget(), f.StoreStatus("canceled", "local")]),
    (S.CANCELED, {"link": LINK}, f.MediaOpened(), S.CANCELED,
     [f.CloseAgent(LINK, 1000, "call ended"), f.StopMedia("local")]),
    (S.CANCELED, {}, f.AgentConnected(LINK), S.CANCELED, [f.CloseAgent(LINK, 1000, "call ended")]),
    (S.OFFERED, {}, f.AgentConnected(LINK), S.OFFERED, [f.CloseAgent(LINK, 1000, "call ended")]),
    (S.RINGING, {}, f.MediaOpened(), S.RINGING, [f.StopMedia("local")]),
    (S.CANCELING, {}, f.Drain(), S.CANCELED, [f.Forget(), f.StoreStatus("canceled", "local")]),
    # answered: the ends
    (S.ANSWERED, {}, f.CallerHungUp(), S.ENDING,
     [f.Forget(), *f.ALL_TIMERS, f.StopMedia("remote"), f.StoreStatus("completed", "remote")]),
    (S.ANSWERED, {}, f.AgentStopped(), S.ENDING, [*END_LOCAL, f.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, f.ApiHangUp(), S.ENDING, [*END_LOCAL, f.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, f.AckTimedOut(), S.ENDING, [*END_LOCAL, f.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, f.Drain(), S.ENDING, [*END_LOCAL, f.StoreStatus("completed", "local")]),
    (S.ANSWERED, {}, f.AgentOverflowed(), S.ENDING,
     [f.Forget(), *f.ALL_TIMERS, f.StopMedia("agent_overflow"), f.HangUpCaller(),
      f.StoreStatus("completed", "agent_overflow")]),
    (S.ANSWERED, {}, f.TimerFired(f.Timer.MAX_DURATION), S.ENDING,
     [f.Forget(), *f.ALL_TIMERS, f.StopMedia("max_duration"), f.HangUpCaller(),
      f.StoreStatus("completed", "max_duration")]),
    # the agent drops and comes back, or does not
    (S.ANSWERED, {}, f.AgentLost(), S.RECONNECTING,
     [f.ArmTimer(f.Timer.RECONNECT_GRACE), f.Redial(AGENT)]),
    (S.RECONNECTING, {}, f.AgentReconnected(LINK), S.ANSWERED,
     [f.CancelTimer(f.Timer.RECONNECT_GRACE), f.Emit("agent reconnected"), f.AttachAgent(LINK)]),
    (S.RECONNECTING, {}, f.TimerFired(f.Timer.RECONNECT_GRACE), S.ENDING,
     [*END_LOCAL, f.StoreStatus("completed", "local")]),
    (S.RECONNECTING, {}, f.CallerHungUp(), S.ENDING,
     [f.Forget(), *f.ALL_TIMERS, f.StopMedia("remote"), f.StoreStatus("completed", "remote")]),
    # voicemail
    (S.VOICEMAIL, {}, f.GreetingPlayed(), S.VOICEMAIL, [f.ArmTimer(f.Timer.VOICEMAIL_LIMIT)]),
    (S.VOICEMAIL, {}, f.TimerFired(f.Timer.VOICEMAIL_LIMIT), S.ENDING,
     [f.Forget(), *f.ALL_TIMERS, f.StopMedia("voicemail"), f.HangUpCaller(),
      f.StoreStatus("completed", "voicemail")]),
    (S.VOICEMAIL, {}, f.CallerHungUp(), S.ENDING,
     [f.Forget(), *f.ALL_TIMERS, f.StopMedia("remote"), f.StoreStatus("completed", "voicemail")]),
    (S.ENDING, {}, f.EndStored(), S.ENDED, []),
    # outbound
    (S.RINGING, {}, f.CalleeAnswered(), S.ANSWERED, []),
    (S.CANCELING, {}, f.CalleeAnswered(), S.ANSWERED, []),
    (S.RINGING, {}, f.RingCanceled(), S.CANCELING, []),
    (S.CANCELING, {}, f.RingFailed("canceled", "local", "canceled"), S.CANCELED,
     [f.StoreStatus("canceled", "local", "canceled")]),
    (S.ANSWERED, {}, f.RingFailed("failed", "local", "agent unreachable"), S.FAILED,
     [f.StoreStatus("failed", "local", "agent unreachable")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "fields", "event", "new_state", "commands"),
    TABLE,
    ids=[f"{row[0].value}-{type(row[2]).__name__}-{i}" for i, row in enumerate(TABLE)],
)
def test_transition(
    state: CallState,
    fields: dict[str, Any],
    event: f.Event,
    new_state: CallState,
    commands: list[f.Command],
) -> None:
    flow = flow_in(state, **fields)
    assert flow.handle(event) == commands
    assert flow.state is new_state


# Events a state does not expect: no commands, the state unchanged.
ILLEGAL: list[tuple[CallState, f.Event]] = [
    (S.OFFERED, f.CallerHungUp()),
    (S.RINGING, f.Routed((DIRECT,), None)),
    (S.RINGING, f.MediaPortsExhausted()),
    (S.RINGING, f.CallerHungUp()),
    (S.RINGING, f.AgentLost()),
    (S.DIALING, f.WebhookAnswered(AGENT)),
    (S.DIALING, f.GreetingPlayed()),
    (S.ANSWERED, f.CallerCanceled()),
    (S.ANSWERED, f.RingingStored()),
    (S.ANSWERED, f.AgentUnreachable()),
    (S.ANSWERED, f.TimerFired(f.Timer.RECONNECT_GRACE)),
    (S.ANSWERED, f.RingCanceled()),
    (S.CANCELING, f.CallerCanceled()),
    (S.VOICEMAIL, f.AgentLost()),
    (S.ENDING, f.CallerHungUp()),
    (S.ENDING, f.ApiHangUp()),
    (S.ENDING, f.RingFailed("failed", "local", "x")),
    (S.ENDED, f.CallerHungUp()),
    (S.ENDED, f.TimerFired(f.Timer.MAX_DURATION)),
    (S.ENDED, f.EndStored()),
    (S.CANCELED, f.CallerCanceled()),
    (S.CANCELED, f.ApiHangUp()),
    (S.REJECTED, f.Drain()),
    (S.FAILED, f.AgentStopped()),
    (S.FAILED, f.RingFailed("failed", "local", "x")),
]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=lambda v: getattr(v, "value", None)
                         or type(v).__name__)  # fmt: skip
def test_unexpected_events_change_nothing(state: CallState, event: f.Event) -> None:
    flow = flow_in(state)
    assert flow.handle(event) == []
    assert flow.state is state


def test_every_event_type_is_covered_by_the_table() -> None:
    handled = {type(row[2]) for row in TABLE}
    assert handled == set(f.Event.__args__)  # type: ignore[attr-defined]


def test_flags_are_read_from_the_one_state() -> None:
    flow = CallFlow()
    flow.handle(f.Routed((DIRECT,), "hi"))
    flow.handle(f.RingingStored())
    assert not (flow.answered or flow.canceled or flow.ended or flow.voicemail)
    flow.handle(f.AgentUnreachable())
    flow.handle(f.AgentUnreachable())
    assert flow.state is S.ANSWERING and flow.voicemail  # the bridge records voicemail
    flow.handle(f.MediaOpened())
    assert flow.answered and flow.voicemail and not flow.ended
    flow.handle(f.CallerHungUp())
    assert flow.ended and flow.answered and flow.voicemail and not flow.canceled
    flow.handle(f.EndStored())
    assert flow.state is S.ENDED and flow.ended


def test_a_cancel_while_dialling_ends_canceled_once_the_dial_returns() -> None:
    flow = CallFlow()
    flow.handle(f.Routed((DIRECT,), None))
    flow.handle(f.RingingStored())
    assert flow.handle(f.CallerCanceled()) == [f.RespondCanceled()]
    assert flow.canceled and not flow.ended
    assert flow.handle(f.AgentConnected(LINK)) == [
        f.CloseAgent(LINK, 1000, "canceled"),
        f.StoreStatus("canceled", "remote"),
        f.Forget(),
    ]
    assert flow.canceled and flow.ended
