"""Agent audio to the caller is paced by the media clock, whatever the chunk size."""

from __future__ import annotations

import asyncio
import time

from tests.media.events import NotedEvents
from trunkline.media.clock import MediaClock
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.plan import MediaPlan
from trunkline.media.session import MediaSession


class RecordingLeg:
    """A caller leg that notes what was sent and when."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes | None]] = []
        self.rewound: list[float] = []

    def send_frame(self, frame: bytes | None) -> None:
        self.sent.append((time.perf_counter(), frame))

    def detach(self) -> None:
        return None

    def rephased(self, earlier_seconds: float) -> None:
        self.rewound.append(earlier_seconds)

    def rtp_counters(self) -> dict[str, int]:
        return {}


def bridge_with_leg() -> tuple[MediaSession, RecordingLeg]:
    factory = MediaSessionFactory(MediaClock())
    bridge = factory.create(MediaPlan("call", caller_alaw=False), NotedEvents())
    leg = RecordingLeg()
    bridge.caller = leg
    bridge.start()
    return bridge, leg


def audio_sends(leg: RecordingLeg) -> list[tuple[float, bytes]]:
    return [(at, frame) for at, frame in leg.sent if frame is not None]


async def test_a_burst_is_played_in_order_at_the_frame_rate() -> None:
    bridge, leg = bridge_with_leg()
    try:
        await asyncio.sleep(0.05)
        burst = b"".join(bytes([0x20 + i]) * 160 for i in range(5))
        bridge.agent_audio(burst)
        await asyncio.sleep(0.2)
        sends = audio_sends(leg)
        assert [frame[0] for _, frame in sends] == [0x20, 0x21, 0x22, 0x23, 0x24]
        gaps = [later - earlier for (earlier, _), (later, _) in zip(sends, sends[1:], strict=False)]
        assert min(gaps) >= 0.010  # paced, not flushed at once (lower bound only: noisy machines)
    finally:
        bridge.stop("done")
