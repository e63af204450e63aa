"""The call core's driver over fakes: any leg, no sockets, no sleeps.

The leg, the agent dialer, the webhook, the media bridge and the call store are
small in-memory stand-ins, so each test shows what the one ring-and-answer flow
asks of a leg and stores, whatever carries the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pytest

from trunkline.calls import flow_events as e
from trunkline.calls.call_media import CallEvents, CallMedia
from trunkline.calls.call_state import CallState
from trunkline.calls.driver import CallCore
from trunkline.calls.flow_events import Timer
from trunkline.calls.identity_signature import IdentitySigner
from trunkline.calls.incoming_webhook import CallDeclined, IncomingCallWebhook
from trunkline.calls.legs import MediaUnavailable
from trunkline.calls.lifecycle import CallLifecycle
from trunkline.calls.live_call import LiveCall
from trunkline.calls.routing import InboundRoute, RouteTarget
from trunkline.config import Settings, settings_from
from trunkline.media.session import MediaSession
from trunkline.storage.models import Call, CallStatus, PhoneNumber, utcnow
from trunkline.storage.stores import CallStore

PRIMARY = "ws://agent.example/primary"
FALLBACK = "ws://agent.example/fallback"
HOOKED = "ws://agent.example/from-webhook"


def target(url: str | None, action: str = "auto_accept", webhook: str | None = None) -> RouteTarget:
    return RouteTarget(action, None, url, webhook, "number")  # type: ignore[arg-type]


class FakeCalls:
    """The call store, in memory: conditional status writes like the real one."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.statuses: list[tuple[CallStatus, str | None]] = []

    async def update_call(
        self,
        call_id: str,
        changes: Mapping[str, Any],
        *,
        only_if_status: Sequence[CallStatus] | None = None,
        events: Sequence[Any] = (),
    ) -> Call | None:
        current = self.calls[call_id]
        if only_if_status is not None and current.status not in only_if_status:
            return None
        known = {k: v for k, v in changes.items() if hasattr(current, k)}
        updated = self.calls[call_id] = replace(current, **known)
        if "status" in changes:
            self.statuses.append((updated.status, updated.hangup_reason))
        return updated

    async def get_call(self, call_id: str) -> Call | None:
        return self.calls.get(call_id)

    async def list_transcripts(self, call_id: str) -> list[Any]:
        return []


@dataclass
class FakeLeg:
    """Any leg: records what the call core asked of it."""

    asked: list[str] = field(default_factory=list)
    no_ports: bool = False
    caller_codec: str = "PCMU"

    def ring(self) -> None:
        self.asked.append("ring")

    async def open_media(self) -> None:
        self.asked.append("open_media")
        if self.no_ports:
            raise MediaUnavailable

    def connect_media(self, bridge: MediaSession) -> None:
        self.asked.append("connect_media")

    def answer(self) -> None:
        self.asked.append("answer")

    def reject(self, status: int, reason: str | None, retry_after: str | None) -> None:
        self.asked.append(f"reject {status} {reason} {retry_after}")

    def confirm_cancel(self) -> None:
        self.asked.append("confirm_cancel")

    def refuse_ringing(self) -> None:
        self.asked.append("refuse_ringing")

    def hang_up(self) -> None:
        self.asked.append("hang_up")

    def close_media(self) -> None:
        self.asked.append("close_media")


@dataclass
class FakeLink:
    url: str
    closed: tuple[int, str] | None = None
    lost: bool = False  # the agent's socket has closed
    close_code: int | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


@dataclass
class FakePlayout:
    backlog_frames: int = 0


@dataclass
class FakeBridge:
    links: list[FakeLink] = field(default_factory=list)
    link: FakeLink | None = None
    played: list[bytes] = field(default_factory=list)
    started: bool = False
    stopped: str | None = None
    speech: None = None
    playout: FakePlayout = field(default_factory=FakePlayout)
    stt_mode: bool = False
    tts_mode: bool = False

    def attach_agent(self, link: FakeLink) -> None:
        self.links.append(link)
        self.link = link

    def start(self) -> None:
        self.started = True

    def stop(self, reason: str) -> None:
        self.stopped = reason

    def media_times(self) -> dict[str, Any]:
        return {}

    def play_phone_audio(self, audio: bytes) -> None:
        self.played.append(audio)


class FakeMedia:
    publishing: set[asyncio.Task[bool]] = set()

    def new_bridge(self, call: LiveCall, events: CallEvents, *, caller_codec: str) -> Any:
        call.bridge = cast(MediaSession, FakeBridge())
        return call.bridge


class FakeDialer:
    """Each URL answers with the next of its outcomes (a link, or None: unreachable)."""

    def __init__(self, outcomes: dict[str, list[bool]]) -> None:
        self.outcomes = outcomes
        self.dialled: list[tuple[str, int]] = []
        self.hold: asyncio.Event | None = None  # set by a test to keep a dial in flight
        self.closes_at_once: int | None = None  # the next link's socket is closed with this
        self.dialling = asyncio.Event()

    async def dial(
        self, call: LiveCall, url: str, *, attempt: int = 1, connect_seconds: float = 5.0
    ) -> FakeLink | None:
        self.dialled.append((url, attempt))
        self.dialling.set()
        if self.hold is not None:
            await self.hold.wait()
        if not self.outcomes[url].pop(0):
            return None
        link = FakeLink(url)
        if self.closes_at_once is not None:  # the agent closes before the call is answered
            link.lost, link.close_code = True, self.closes_at_once
            self.closes_at_once = None
        return link


class FakeWebhook:
    def __init__(self, reply: str | None | type[CallDeclined]) -> None:
        self.reply = reply

    async def ask(self, record: Call, target: RouteTarget) -> str | None:
        if self.reply is CallDeclined:
            raise CallDeclined
        return cast(str | None, self.reply)


@dataclass
class Harness:
    core: CallCore
    store: FakeCalls
    dialer: FakeDialer
    tasks: list[asyncio.Task[Any]]

    async def call(self, leg: FakeLeg, route: InboundRoute) -> LiveCall:
        record = Call.initiated(NUMBER, remote_phone_number="+15550001111", direction="inbound")
        self.store.calls[record.id] = record
        lifecycle = CallLifecycle(record, cast(CallStore, self.store))
        call = LiveCall(leg_call_id=f"leg-{record.id}", lifecycle=lifecycle, leg=leg)
        await self.core.ring_and_answer(call, route)
        await self.settle()
        return call

    async def settle(self) -> None:
        while pending := [t for t in self.tasks if not t.done()]:
            await asyncio.gather(*pending)


NUMBER = PhoneNumber(
    id="number-1",
    organization_id="org-1",
    number="+15550100001",
    type="local",
    status="active",
    incoming_call_action="auto_accept",
    client_websocket_url=PRIMARY,
    incoming_call_webhook_url=None,
    agent_identity_id=None,
    state="NY",
    country="US",
    created_at=utcnow(),
    updated_at=utcnow(),
)


def harness(
    outcomes: dict[str, list[bool]],
    webhook: str | None | type[CallDeclined] = None,
    settings: Settings | None = None,
) -> Harness:
    store = FakeCalls()
    dialer = FakeDialer(outcomes)
    tasks: list[asyncio.Task[Any]] = []

    def spawn(coroutine: Coroutine[Any, Any, Any]) -> None:
        tasks.append(asyncio.ensure_future(coroutine))

    core = CallCore(
        cast(CallStore, store),
        cast(IdentitySigner, None),
        cast(IncomingCallWebhook, FakeWebhook(webhook)),
        cast(CallMedia, FakeMedia()),
        settings or Settings(),
        wake_outbox=lambda: None,
        spawn=spawn,
    )
    core.dialer = dialer  # type: ignore[assignment]
    return Harness(core, store, dialer, tasks)


ANSWERED_LEG = ["ring", "open_media", "connect_media", "answer"]


async def test_the_agent_is_retried_once_then_the_fallback_answers() -> None:
    h = harness({PRIMARY: [False, False], FALLBACK: [True]})
    leg = FakeLeg()
    call = await h.call(leg, InboundRoute("auto_accept", (target(PRIMARY), target(FALLBACK)), None,
                                          "number"))  # fmt: skip
    assert h.dialer.dialled == [(PRIMARY, 1), (PRIMARY, 2), (FALLBACK, 1)]
    assert leg.asked == ANSWERED_LEG
    assert call.flow.state is CallState.ANSWERED and call.answered
    assert h.store.statuses == [("ringing", None), ("answered", None)]
    assert Timer.MAX_DURATION in call.timers
    bridge = cast(FakeBridge, call.bridge)
    assert bridge.started and [link.url for link in bridge.links] == [FALLBACK]
    assert h.core.calls == {call.leg_call_id: call}


async def test_the_webhook_names_the_agent() -> None:
    h = harness({HOOKED: [True]}, webhook=HOOKED)
    route = InboundRoute("webhook", (target(None, "webhook", "https://hook.example"),), None,
                         "number")  # fmt: skip
    call = await h.call(FakeLeg(), route)
    assert h.dialer.dialled == [(HOOKED, 1)] and call.answered


async def test_a_declining_webhook_rejects_with_603() -> None:
    h = harness({}, webhook=CallDeclined)
    leg = FakeLeg()
    route = InboundRoute("webhook", (target(None, "webhook", "https://hook.example"),), "vm",
                         "number")  # fmt: skip
    call = await h.call(leg, route)
    assert leg.asked == ["ring", "reject 603 None None"]
    assert h.store.statuses[-1] == ("failed", "rejected")
    assert call.flow.state is CallState.FAILED and not h.core.calls


async def test_no_agent_and_no_voicemail_is_480() -> None:
    h = harness({PRIMARY: [False, False]})
    leg = FakeLeg()
    await h.call(leg, InboundRoute("auto_accept", (target(PRIMARY),), None, "number"))
    assert leg.asked == ["ring", "reject 480 Agent Unavailable None"]
    assert h.store.statuses == [("ringing", None), ("failed", "rejected")]


async def test_voicemail_asks_nothing_of_the_leg_but_an_answer() -> None:
    h = harness({PRIMARY: [False, False]})
    leg = FakeLeg()
    call = await h.call(leg, InboundRoute("auto_accept", (target(PRIMARY),), "Leave a message",
                                          "number"))  # fmt: skip
    assert leg.asked == ANSWERED_LEG  # the same as an agent's answer: no voicemail leg code
    assert call.flow.state is CallState.VOICEMAIL and call.voicemail
    bridge = cast(FakeBridge, call.bridge)
    assert bridge.played and not bridge.links  # the beep, no agent
    assert Timer.VOICEMAIL_LIMIT in call.timers  # the message time runs from the beep
    await h.core.dispatch(call, e.CallerHungUp())
    assert h.store.statuses[-1] == ("completed", "voicemail")


async def test_every_port_in_use_is_503_and_the_agent_is_let_go() -> None:
    h = harness({PRIMARY: [True]})
    leg = FakeLeg(no_ports=True)
    call = await h.call(leg, InboundRoute("auto_accept", (target(PRIMARY),), None, "number"))
    assert leg.asked == ["ring", "open_media", "reject 503 None 30"]
    assert h.store.statuses[-1] == ("failed", "rejected")
    assert call.lifecycle.record.failure_detail == "no port"


async def test_a_cancel_while_dialling_ends_canceled_once_the_dial_returns() -> None:
    h = harness({PRIMARY: [True]})
    h.dialer.hold = asyncio.Event()
    leg = FakeLeg()
    record = Call.initiated(NUMBER, remote_phone_number="+15550001111", direction="inbound")
    h.store.calls[record.id] = record
    call = LiveCall("leg-1", CallLifecycle(record, cast(CallStore, h.store)), leg=leg)
    ringing = asyncio.ensure_future(
        h.core.ring_and_answer(
            call, InboundRoute("auto_accept", (target(PRIMARY),), None, "number")
        )  # fmt: skip
    )
    await h.dialer.dialling.wait()
    h.core.post(call, e.CallerCanceled())
    await h.settle()
    assert leg.asked == ["ring", "confirm_cancel"] and call.canceled
    h.dialer.hold.set()
    await ringing
    assert call.flow.state is CallState.CANCELED
    assert h.store.statuses[-1] == ("canceled", "remote") and not h.core.calls


async def test_the_end_stops_media_hangs_up_and_stores_once() -> None:
    h = harness({PRIMARY: [True]})
    leg = FakeLeg()
    call = await h.call(leg, InboundRoute("auto_accept", (target(PRIMARY),), None, "number"))
    await h.core.dispatch(call, e.AgentStopped())
    await h.core.dispatch(call, e.CallerHungUp())  # too late: changes nothing
    assert leg.asked == [*ANSWERED_LEG, "close_media", "hang_up"]
    assert cast(FakeBridge, call.bridge).stopped == "local"
    assert h.store.statuses[-1] == ("completed", "local")
    assert call.flow.state is CallState.ENDED and not h.core.calls
    assert h.core.calls_ending == 0 and h.core.ends_stored.is_set() and not call.timers


async def test_a_lost_agent_is_redialled_within_the_grace_period() -> None:
    h = harness({PRIMARY: [True, True]})
    call = await h.call(FakeLeg(), InboundRoute("auto_accept", (target(PRIMARY),), None, "number"))
    h.core.agent_lost(call)  # the agent's socket closed
    await h.settle()
    assert call.flow.state is CallState.ANSWERED
    assert Timer.RECONNECT_GRACE not in call.timers
    assert [link.url for link in cast(FakeBridge, call.bridge).links] == [PRIMARY, PRIMARY]


@pytest.mark.parametrize("close_code", [1000, 1001])
async def test_an_agent_closing_its_socket_hangs_up_without_a_redial(close_code: int) -> None:
    h = harness({PRIMARY: [True, True]})
    leg = FakeLeg()
    call = await h.call(leg, InboundRoute("auto_accept", (target(PRIMARY),), None, "number"))
    h.core.agent_lost(call, close_code)  # pipecat's EndFrame closes with 1000
    await h.settle()
    assert call.flow.state is CallState.ENDED and not h.core.calls
    assert leg.asked == [*ANSWERED_LEG, "close_media", "hang_up"]
    assert h.store.statuses[-1] == ("completed", "local")
    assert [link.url for link in cast(FakeBridge, call.bridge).links] == [PRIMARY]  # no redial


@pytest.mark.parametrize(("close_code", "dialled"), [(1000, 1), (1006, 2)])
async def test_an_agent_that_closed_while_the_call_was_answered_is_acted_on(
    close_code: int, dialled: int
) -> None:
    h = harness({PRIMARY: [True, True]})
    h.dialer.closes_at_once = close_code  # closed before the flow could hear it
    leg = FakeLeg()
    call = await h.call(leg, InboundRoute("auto_accept", (target(PRIMARY),), None, "number"))
    await h.settle()
    assert len(h.dialer.dialled) == dialled  # 1000: hung up; 1006: redialled
    if close_code == 1000:
        assert call.flow.state is CallState.ENDED
        assert h.store.statuses[-1] == ("completed", "local")
    else:
        assert call.flow.state is CallState.ANSWERED


@pytest.mark.parametrize("organization_calls", [1, 2])
async def test_capacity_counts_live_calls_of_the_organisation(organization_calls: int) -> None:
    h = harness(
        {PRIMARY: [True] * organization_calls}, settings=settings_from({"max_calls_per_org": 2})
    )
    for _ in range(organization_calls):
        await h.call(FakeLeg(), InboundRoute("auto_accept", (target(PRIMARY),), None, "number"))
    assert h.core.at_capacity("org-1") is (organization_calls == 2)
    assert not h.core.at_capacity("another-org")
