"""Each call's media session, built in one place from the call's plan.

``CallMedia`` turns a live call into the ``MediaPlan`` the media package
builds a session from (the number's agent protocol and audio format,
recording, the Twilio persona's custom parameters), and what the session
reports back into the call core's events: the agent's ``stop``, an agent that
stops reading, its ``transcript`` frames, segments to store, media that failed,
and a finished recording, published from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol

from trunkline.agent.formats import AGENT_FORMATS
from trunkline.calls.live_call import LiveCall
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.calls.records import agent_custom_parameters
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.plan import MediaPlan
from trunkline.media.session import MediaSession
from trunkline.media.speech_work import Party


class CallEvents(Protocol):
    """What the call core does with what a call's media session reports."""

    def agent_stopped(self, call: LiveCall) -> None: ...

    def agent_overflowed(self, call: LiveCall) -> None: ...

    def media_failed(self, call: LiveCall) -> None: ...

    def agent_transcript(self, call: LiveCall, party: str, text: str) -> None: ...

    async def store_segment(self, call: LiveCall, party: str, text: str, ts_ms: int) -> None: ...


class CallMedia:
    """The process's media session factory, and the recordings being published."""

    def __init__(self, sessions: MediaSessionFactory, publisher: RecordingPublisher) -> None:
        self.sessions = sessions
        self.publisher = publisher
        # Recordings being published: never cancelled; the gateway's close waits for them.
        self.publishing: set[asyncio.Task[bool]] = set()

    def new_bridge(self, call: LiveCall, events: CallEvents, *, caller_codec: str) -> MediaSession:
        """A media session for the call with the number's agent options; the caller leg is next."""
        record = call.lifecycle.record
        plan = MediaPlan(
            call_id=call.lifecycle.call_id,
            caller_codec=caller_codec,
            organization_id=record.organization_id,
            agent_protocol=call.agent_protocol,
            agent_format=AGENT_FORMATS.get(call.agent_audio, AGENT_FORMATS["mulaw8k"]),
            record=call.recording_enabled or call.voicemail,
            custom_parameters=agent_custom_parameters(record),
            speech_by_default=call.agent_audio == "mulaw8k",
        )
        loop = asyncio.get_running_loop()
        session = self.sessions.create(plan, _SessionEvents(self, events, call, loop))
        call.bridge = session
        return session

    def publish_soon(self, call: LiveCall, path: Path) -> None:
        lifecycle = call.lifecycle
        task = asyncio.create_task(
            self.publisher.publish(lifecycle.record, lifecycle.agent_identity_id, path)
        )
        self.publishing.add(task)
        task.add_done_callback(self.publishing.discard)


class _SessionEvents:
    """One call's ``media.plan.MediaEvents``: the session's reports, for the call core."""

    __slots__ = ("_call", "_events", "_loop", "_media")

    def __init__(
        self,
        media: CallMedia,
        events: CallEvents,
        call: LiveCall,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._media, self._events, self._call, self._loop = media, events, call, loop

    def agent_stopped(self, reason: str | None) -> None:
        self._events.agent_stopped(self._call)

    def agent_overflowed(self) -> None:
        self._events.agent_overflowed(self._call)

    def media_failed(self) -> None:
        self._events.media_failed(self._call)

    def agent_transcript(self, party: str, text: str) -> None:
        self._events.agent_transcript(self._call, party, text)

    def store_segment(self, party: Party, text: str, ts_ms: int) -> Awaitable[None]:
        return self._events.store_segment(self._call, party, text, ts_ms)

    def recording_finished(self, call_id: str, path: Path) -> None:  # on the writer's thread
        media, call = self._media, self._call
        self._loop.call_soon_threadsafe(lambda: media.publish_soon(call, path))
