"""Each call's media bridge, built in one place with the number's agent options.

The bridge reports back to the call core through a ``MediaEvents``: the
agent's ``stop``, an agent that floods, its ``transcript`` frames, transcript
segments to store, and a finished recording (published from here).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from trunkline.calls.live_call import LiveCall
from trunkline.calls.recording_publish import RecordingPublisher
from trunkline.calls.records import agent_custom_parameters
from trunkline.gateway.agent.formats import AGENT_FORMATS
from trunkline.gateway.clock import MediaClock
from trunkline.gateway.media import MediaBridge
from trunkline.gateway.probes import MediaTotals
from trunkline.gateway.recording import CallRecorder, RecordingWriter
from trunkline.speech.engines import SpeechEngines


class MediaEvents(Protocol):
    def agent_stopped(self, call: LiveCall) -> None: ...

    def agent_overflowed(self, call: LiveCall) -> None: ...

    def agent_transcript(self, call: LiveCall, party: str, text: str) -> None: ...

    async def store_segment(self, call: LiveCall, party: str, text: str, ts_ms: int) -> None: ...


class CallMediaFactory:
    """Shared by the process's calls: the clock, the recording writer, speech, media totals."""

    def __init__(
        self,
        clock: MediaClock,
        recordings: RecordingWriter,
        speech: SpeechEngines,
        totals: MediaTotals,
        publisher: RecordingPublisher,
        *,
        max_playout_seconds: float,
    ) -> None:
        self.clock = clock
        self.recordings = recordings
        self.speech = speech
        self.totals = totals
        self.publisher = publisher
        self.max_playout_seconds = max_playout_seconds
        # Recordings being published: never cancelled; the gateway's close waits for them.
        self.publishing: set[asyncio.Task[bool]] = set()

    def new_bridge(self, call: LiveCall, events: MediaEvents, *, caller_alaw: bool) -> MediaBridge:
        """A bridge for the call with the number's agent options; the caller leg comes next."""
        record = call.lifecycle.record
        bridge = MediaBridge(
            call.lifecycle.call_id,
            caller_alaw=caller_alaw,
            clock=self.clock,
            on_agent_stop=lambda reason: events.agent_stopped(call),
            on_agent_overflow=lambda: events.agent_overflowed(call),
            on_transcript=lambda party, text: events.agent_transcript(call, party, text),
            agent_protocol=call.agent_protocol,
            organization_id=record.organization_id,
            agent_format=AGENT_FORMATS.get(call.agent_audio, AGENT_FORMATS["mulaw8k"]),
            custom_parameters=agent_custom_parameters(record),
            totals=self.totals,
            max_playout_seconds=self.max_playout_seconds,
            recorder=CallRecorder(self.recordings, record.id)
            if call.recording_enabled or call.voicemail
            else None,
            speech=self.speech,
            store_segment=lambda party, text, ts_ms: events.store_segment(call, party, text, ts_ms),
            speech_by_default=call.agent_audio == "mulaw8k",
        )
        loop = asyncio.get_running_loop()

        def recorded(call_id: str, path: Path) -> None:  # on the writer's thread
            loop.call_soon_threadsafe(lambda: self._publish_soon(call, path))

        bridge.on_recorded = recorded
        call.bridge = bridge
        return bridge

    def _publish_soon(self, call: LiveCall, path: Path) -> None:
        lifecycle = call.lifecycle
        task = asyncio.create_task(
            self.publisher.publish(lifecycle.record, lifecycle.agent_identity_id, path)
        )
        self.publishing.add(task)
        task.add_done_callback(self.publishing.discard)
