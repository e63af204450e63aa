"""The call core's driver: runs each call's ``CallFlow`` against its leg, agent and storage.

One driver per process, for every leg. ``ring_and_answer`` takes a stored,
routed call from ringing to answered (or voicemail, or its 480/603/503 end):
targets in order, the incoming-call webhook, each agent URL tried twice, the
fallback agent, voicemail. Events from outside (a CANCEL, a BYE, the carrier
closing its stream, an API hang-up, the agent's ``stop``, a timer) are
``post``-ed; the flow decides, the driver carries out its commands. The end
(media stopped, the caller hung up, the transcript awaited, ``completed``
stored) is counted in ``calls_ending`` until stored, for the drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from trunkline import metrics
from trunkline.agent.link import AgentLink
from trunkline.calls import flow_commands as c
from trunkline.calls import flow_events as e
from trunkline.calls import voicemail
from trunkline.calls.agent_dial import AGENT_CONNECT_SECONDS, AgentDialer
from trunkline.calls.call_media import CallMedia
from trunkline.calls.call_state import CallState
from trunkline.calls.identity_signature import IdentitySigner
from trunkline.calls.incoming_webhook import CallDeclined, IncomingCallWebhook
from trunkline.calls.legs import MediaUnavailable
from trunkline.calls.live_call import LiveCall
from trunkline.calls.owner_channel import owner_id
from trunkline.calls.routing import InboundRoute
from trunkline.calls.transcripts import store_transcript_segment
from trunkline.config import Settings
from trunkline.storage.models import utcnow
from trunkline.storage.stores import CallStore

log = logging.getLogger("trunkline.sip")
TRANSCRIPT_WAIT_SECONDS = 15.0  # at hang-up, for the last utterances to be transcribed

Spawn = Callable[[Coroutine[Any, Any, Any]], None]


class CallCore:
    """This process's live calls and the one ring-and-answer flow they all go through."""

    def __init__(
        self,
        repository: CallStore,
        signer: IdentitySigner,
        webhook: IncomingCallWebhook,
        media: CallMedia,
        settings: Settings,
        *,
        wake_outbox: Callable[[], None],
        spawn: Spawn,
        on_forget: Callable[[LiveCall], None] = lambda call: None,
    ) -> None:
        self.repository = repository
        self.webhook = webhook
        self.media = media
        self.settings = settings  # read per call: limits, grace periods, private targets
        self.wake_outbox = wake_outbox
        self.spawn = spawn
        self.on_forget = on_forget
        self.dialer = AgentDialer(signer, self.agent_lost, settings)
        self.calls: dict[str, LiveCall] = {}  # by the leg's call id
        self.calls_ending = 0  # left ``calls``, still storing their end (status, transcript)
        self.ends_stored = asyncio.Event()  # set while ``calls_ending`` is 0
        self.ends_stored.set()

    def at_capacity(self, organization_id: str) -> bool:
        """True when the organisation already has its maximum of concurrent calls here."""
        limit = self.settings.calls.max_calls_per_org
        if not limit:
            return False
        live = sum(
            1
            for call in self.calls.values()
            if not call.ended and call.lifecycle.record.organization_id == organization_id
        )
        return live >= limit

    # -- the one ring-and-answer flow ----------------------------------------------------
    async def ring_and_answer(self, call: LiveCall, route: InboundRoute) -> None:
        """Ring the stored call and answer it with an agent or voicemail, or refuse it."""
        self.calls[call.leg_call_id] = call
        try:
            await self.dispatch(call, e.Routed(route.targets, route.voicemail_message))
        except Exception:
            log.exception("inbound call failed", extra={"call_id": call.lifecycle.call_id})
            if not call.answered and call.leg is not None:
                call.leg.reject(500, None, None)
            await self.dispatch(call, e.Drain())

    def post(self, call: LiveCall, event: e.Event) -> None:
        """An event from outside the flow (a leg, the agent, a timer): handled in a task."""
        self.spawn(self.dispatch(call, event))

    async def dispatch(self, call: LiveCall, event: e.Event) -> None:
        """Apply ``event`` to the call's flow and carry out what it asks, to the end."""
        before = call.flow.state
        commands = call.flow.handle(event)
        if call.flow.state is not CallState.ENDING or before is CallState.ENDING:
            await self._run(call, commands)
            return
        self.calls_ending += 1  # the drain waits for this, not only for ``calls``
        self.ends_stored.clear()
        try:
            await self._run(call, commands)
        finally:
            self.calls_ending -= 1
            if not self.calls_ending:
                self.ends_stored.set()

    async def _run(self, call: LiveCall, commands: list[c.Command]) -> None:
        pending = deque(commands)
        transcribed: asyncio.Future[None] | None = None
        while pending:
            command = pending.popleft()
            if isinstance(command, c.StopMedia):
                transcribed = self._stop_media(call, command.reason)
                continue
            if isinstance(command, c.StoreStatus) and command.status == "completed":
                await self._store_end(call, command, transcribed)
                pending.extend(call.flow.handle(e.EndStored()))
                continue
            outcome = await self._execute(call, command)
            if outcome is not None:
                pending.extend(call.flow.handle(outcome))

    async def _execute(self, call: LiveCall, command: c.Command) -> e.Event | None:
        """Carry out one command; the event it results in, if any."""
        leg = call.leg
        match command:
            case c.Ring():
                if leg is not None:
                    leg.ring()
            case c.StoreStatus(status="ringing"):
                await call.lifecycle.transition("ringing")
                return e.RingingStored()
            case c.StoreStatus(status="answered"):
                await self.mark_answered(call, call.flow.url)
            case c.StoreStatus(status=status, hangup_reason=reason, detail=detail):
                await call.lifecycle.transition(status, hangup_reason=reason, detail=detail)
            case c.AskWebhook(target=target):
                try:
                    url = await self.webhook.ask(call.lifecycle.record, target)
                except CallDeclined:
                    return e.WebhookDeclined()
                return e.WebhookAnswered(url) if url is not None else e.WebhookUndecided()
            case c.DialAgent(url=url, attempt=attempt):
                link = await self.dialer.dial(call, url, attempt=attempt)
                return e.AgentConnected(link) if link is not None else e.AgentUnreachable()
            case c.CloseAgent(link=link, code=code, reason=reason):
                link.close(code, reason)
            case c.OpenMedia():
                return await self._open_media(call)
            case c.Answer():
                if leg is not None:
                    leg.answer()
                if call.bridge is not None:
                    call.bridge.start()
                    self._agent_closed_while_answering(call)
            case c.StartVoicemail(message=message):
                self.spawn(self._voicemail(call, message))
            case c.Reject(status=status, reason=reason, retry_after=retry_after):
                if leg is not None:
                    leg.reject(status, reason, retry_after)
            case c.RespondCanceled():
                if leg is not None:
                    leg.confirm_cancel()
            case c.RefuseRinging():
                if leg is not None:
                    leg.refuse_ringing()
            case c.HangUpCaller():
                if leg is not None:
                    leg.hang_up()
            case c.ArmTimer(timer=timer):
                self._arm(call, timer)
            case c.CancelTimer(timer=timer):
                handle = call.timers.pop(timer, None)
                if handle is not None:
                    handle.cancel()
            case c.Redial(url=url):
                deadline = asyncio.get_running_loop().time() + self._grace
                self.spawn(self._redial(call, url, deadline))
            case c.AttachAgent(link=link):
                if call.bridge is not None:
                    call.bridge.attach_agent(link)  # a fresh start frame on the new socket
            case c.Forget():
                self.calls.pop(call.leg_call_id, None)
                self.on_forget(call)
            case c.Emit(message=message):
                log.info(message, extra={"call_id": call.lifecycle.call_id})
        return None

    async def _open_media(self, call: LiveCall) -> e.Event:
        leg = call.leg
        assert leg is not None
        try:
            await leg.open_media()
        except MediaUnavailable:
            return e.MediaPortsExhausted()
        self.new_bridge(call, call.flow.link)
        return e.MediaOpened()

    def new_bridge(self, call: LiveCall, link: AgentLink | None) -> None:
        """The call's media bridge between its leg and ``link`` (none: voicemail)."""
        leg = call.leg
        assert leg is not None
        bridge = self.media.new_bridge(call, self, caller_codec=leg.caller_codec)
        leg.connect_media(bridge)
        if link is not None:
            bridge.attach_agent(link)

    async def mark_answered(self, call: LiveCall, url: str | None) -> None:
        bridge = call.bridge
        await call.lifecycle.transition(
            "answered",
            changes={
                "client_websocket_url": url,
                "use_inkbox_stt": bridge is not None and bridge.stt_mode,
                "use_inkbox_tts": bridge is not None and bridge.tts_mode,
                "owner": owner_id(),
                **(bridge.media_times() if bridge is not None else {}),
            },
        )
        self.wake_outbox()

    async def _voicemail(self, call: LiveCall, message: str) -> None:
        played = await voicemail.greet(
            call, message, owner=owner_id(), wake_outbox=self.wake_outbox
        )
        if played:
            await self.dispatch(call, e.GreetingPlayed())

    def _arm(self, call: LiveCall, timer: e.Timer) -> None:
        seconds = {
            e.Timer.MAX_DURATION: self.settings.calls.max_call_seconds,
            e.Timer.RECONNECT_GRACE: self._grace,
            e.Timer.VOICEMAIL_LIMIT: self.settings.calls.voicemail_max_seconds,
        }[timer]
        previous = call.timers.pop(timer, None)
        if previous is not None:
            previous.cancel()
        call.timers[timer] = asyncio.get_running_loop().call_later(
            seconds, lambda: self.post(call, e.TimerFired(timer))
        )

    @property
    def _grace(self) -> float:
        return self.settings.calls.agent_reconnect_grace_seconds

    # -- the agent -------------------------------------------------------------------------
    def agent_lost(self, call: LiveCall, close_code: int | None = None) -> None:
        """The agent's socket closed: on purpose the call ends, else the agent is redialled."""
        if call.flow.state is CallState.ANSWERED:
            self.post(call, e.AgentLost(close_code))

    def _agent_closed_while_answering(self, call: LiveCall) -> None:
        """The agent's socket closed before the call was answered, when its close could not
        act on the call: it does now (a hang-up, or a redial)."""
        link = call.bridge.link if call.bridge is not None else None
        if link is not None and link.lost:
            self.post(call, e.AgentLost(link.close_code))

    async def _redial(self, call: LiveCall, url: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        pause = 0.1
        while call.flow.state is CallState.RECONNECTING:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            link = await self.dialer.dial(
                call, url, connect_seconds=min(remaining, AGENT_CONNECT_SECONDS)
            )
            if link is not None:
                await self.dispatch(call, e.AgentReconnected(link))
                return
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, 1.0)

    # CallEvents: what a call's media session reports.
    def agent_stopped(self, call: LiveCall) -> None:
        self.post(call, e.AgentStopped())

    def agent_overflowed(self, call: LiveCall) -> None:
        self.post(call, e.AgentOverflowed())

    def media_failed(self, call: LiveCall) -> None:
        self.post(call, e.MediaFailed())

    def agent_transcript(self, call: LiveCall, party: str, text: str) -> None:
        """A ``transcript`` frame from the agent, stored at the time it arrived."""
        record = call.lifecycle.record
        started = record.started_at or record.created_at
        offset = int((utcnow() - started).total_seconds() * 1000)
        metrics.TRANSCRIPTS.labels(party, "agent").inc()
        party = "local" if party == "local" else "remote"
        self.spawn(self.store_segment(call, party, text, offset))

    async def store_segment(self, call: LiveCall, party: str, text: str, ts_ms: int) -> None:
        """Store one transcript segment and announce it as ``transcript.segment``."""
        await store_transcript_segment(
            self.repository, self.wake_outbox, call.lifecycle, party, text, ts_ms
        )

    # -- the end ---------------------------------------------------------------------------
    def _stop_media(self, call: LiveCall, reason: str) -> asyncio.Future[None] | None:
        transcribed = call.bridge.stop(reason) if call.bridge is not None else None
        if call.leg is not None:
            call.leg.close_media()
        return transcribed

    async def _store_end(
        self, call: LiveCall, command: c.StoreStatus, transcribed: asyncio.Future[None] | None
    ) -> None:
        if transcribed is not None:  # call.ended carries the whole transcript
            await asyncio.wait({transcribed}, timeout=TRANSCRIPT_WAIT_SECONDS)
        await call.lifecycle.transition(
            "completed",
            hangup_reason=command.hangup_reason,
            changes=call.bridge.media_times() if call.bridge is not None else None,
        )

    async def hangup(self, call_id: str) -> bool:
        """An API hang-up of a call carried here; False when no live call has that id."""
        for call in list(self.calls.values()):
            if call.lifecycle.call_id == call_id:
                await self.dispatch(call, e.ApiHangUp())
                return True
        return False

    async def answer_outbound(self, call: LiveCall, link: AgentLink, url: str) -> None:
        """The callee answered and the agent is connected: bridge them, store ``answered``."""
        call.flow.url = url
        self.new_bridge(call, link)
        assert call.bridge is not None
        call.bridge.start()
        await self._run(call, [c.ArmTimer(e.Timer.MAX_DURATION), c.StoreStatus("answered")])
