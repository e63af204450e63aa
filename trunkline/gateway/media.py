"""The per-call media bridge: caller RTP ⇄ agent WebSocket, driven by callbacks and the tick.

Caller → agent: each RTP payload arrives in ``datagram_received`` and is sent
to the agent as a ``media`` frame right there (μ-law is passed through; A-law
is transcoded by one table lookup). Agent → caller: ``media`` payloads go
into the call's ``Playout``; the shared 20 ms tick takes one frame per call
and sends it as RTP. Nothing here creates a task or queue per frame.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from trunkline.codecs.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW
from trunkline.gateway.agent.inkbox_protocol import (
    AgentAudioDone,
    AgentClear,
    AgentMark,
    AgentMedia,
    AgentProtocolError,
    AgentStop,
    AgentText,
    AgentTranscript,
    MediaFrameEncoder,
    dtmf_frame,
    mark_frame,
    parse_agent_frame,
    start_frame,
    stop_frame,
)
from trunkline.gateway.agent.link import AgentLink
from trunkline.gateway.clock import MediaClock
from trunkline.gateway.playout import Playout
from trunkline.gateway.rtp.session import RtpSession
from trunkline.gateway.rtp.transport import RtpEndpoint

log = logging.getLogger("trunkline.media")


class MediaBridge:
    """Bridges one call's RTP endpoint and agent link until ``stop``."""

    def __init__(
        self,
        call_id: str,
        endpoint: RtpEndpoint,
        *,
        payload_type: int,
        event_payload_type: int | None,
        remote: tuple[str, int],
        clock: MediaClock,
        on_agent_stop: Callable[[str | None], None],
        on_transcript: Callable[[str, str], None] | None = None,
        max_playout_seconds: float = 60.0,
    ) -> None:
        self.call_id = call_id
        self.stream_id = str(uuid.uuid4())
        self.endpoint = endpoint
        self.alaw = payload_type == 8
        self.session = RtpSession(
            payload_type, event_payload_type, self._caller_audio, self._caller_digit, remote=remote
        )
        endpoint.session = self.session
        self.playout = Playout(self._mark_played, max_seconds=max_playout_seconds)
        self._encoder = MediaFrameEncoder(self.stream_id)
        self._clock = clock
        self._tick_handle: int | None = None
        self._on_agent_stop = on_agent_stop
        self._on_transcript = on_transcript
        self.link: AgentLink | None = None
        self.agent_frames_rejected = 0
        self.frames_to_agent = 0

    # -- wiring ----------------------------------------------------------------------
    def attach_agent(self, link: AgentLink) -> None:
        self.link = link
        link.send_text(start_frame(self.stream_id, self.call_id))

    def start(self) -> None:
        if self._tick_handle is None:
            self._tick_handle = self._clock.subscribe(self._tick)

    def stop(self, reason: str) -> None:
        """Stop media: tell the agent why, close its socket, stop the tick."""
        if self._tick_handle is not None:
            self._clock.unsubscribe(self._tick_handle)
            self._tick_handle = None
        self.endpoint.session = None
        link, self.link = self.link, None
        if link is not None and link.open:
            link.send_text(stop_frame(reason))
            link.close(1000, reason)

    # -- caller -> agent -------------------------------------------------------------
    def _caller_audio(self, payload: memoryview) -> None:
        link = self.link
        if link is None:
            return
        audio = bytes(payload).translate(ALAW_TO_ULAW) if self.alaw else payload
        if link.send_text(self._encoder.encode(audio), droppable=True):
            self.frames_to_agent += 1

    def _caller_digit(self, digit: str) -> None:
        if self.link is not None:
            self.link.send_text(dtmf_frame(digit))

    # -- agent -> caller -------------------------------------------------------------
    def agent_text(self, text: str) -> None:
        """One text frame from the agent (called from the link's data_received)."""
        try:
            message = parse_agent_frame(text)
        except AgentProtocolError as exc:
            self.agent_frames_rejected += 1
            log.debug("agent frame rejected: %s", exc, extra={"call_id": self.call_id})
            return
        if isinstance(message, AgentMedia):
            self.playout.push(message.payload)
        elif isinstance(message, AgentMark):
            self.playout.mark(message.name)
        elif isinstance(message, AgentClear):
            self.playout.clear()
        elif isinstance(message, AgentAudioDone):
            self.playout.audio_done()
        elif isinstance(message, AgentStop):
            self._on_agent_stop(message.reason)
        elif isinstance(message, AgentTranscript):
            if self._on_transcript is not None and message.is_final:
                self._on_transcript(message.party, message.text)
        elif isinstance(message, AgentText):
            self.agent_frames_rejected += 1  # text-to-speech arrives with the speech engines

    def _mark_played(self, name: str) -> None:
        if self.link is not None:
            self.link.send_text(mark_frame(name))

    def _tick(self) -> None:
        frame = self.playout.tick()
        if frame is not None and self.alaw:
            frame = frame.translate(ULAW_TO_ALAW)
        packet = self.session.next_frame(frame)
        if packet is not None:
            self.endpoint.send(packet)
