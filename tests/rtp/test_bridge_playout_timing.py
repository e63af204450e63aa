"""Agent audio to the caller is paced by the media clock, whatever the chunk size."""

from __future__ import annotations

from collections.abc import Callable

from tests.fakes.clock import FakeLoop
from tests.media.events import NotedEvents
from trunkline.media.clock import SLOT_SECONDS, TICK_SECONDS, MediaClock
from trunkline.media.factory import MediaSessionFactory
from trunkline.media.plan import MediaPlan
from trunkline.media.session import MediaSession


class RecordingLeg:
    """A caller leg that notes what was sent and when."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.sent: list[tuple[float, bytes | None]] = []
        self.rewound: list[float] = []

    def send_frame(self, frame: bytes | None) -> None:
        self.sent.append((self.now(), frame))

    def detach(self) -> None:
        return None

    def rephased(self, earlier_seconds: float) -> None:
        self.rewound.append(earlier_seconds)

    def rtp_counters(self) -> dict[str, int]:
        return {}


def bridge_with_leg(loop: FakeLoop) -> tuple[MediaSession, RecordingLeg]:
    factory = MediaSessionFactory(MediaClock(loop))
    bridge = factory.create(MediaPlan("call", caller_codec="PCMU"), NotedEvents())
    leg = RecordingLeg(loop.time)
    bridge.caller = leg
    bridge.start()
    return bridge, leg


def audio_sends(leg: RecordingLeg) -> list[tuple[float, bytes]]:
    return [(at, frame) for at, frame in leg.sent if frame is not None]


def test_a_burst_is_played_in_order_at_the_frame_rate() -> None:
    loop = FakeLoop(0.0)
    bridge, leg = bridge_with_leg(loop)
    try:
        loop.advance(0.05 + SLOT_SECONDS / 2)  # between two slots, away from the call's own
        assert leg.sent and audio_sends(leg) == []  # silence slots went to the leg
        burst = b"".join(bytes([0x20 + i]) * 160 for i in range(5))
        pushed_at = loop.time()
        bridge.agent_audio(burst)
        loop.advance(0.2)
        sends = audio_sends(leg)
        assert [frame[0] for _, frame in sends] == [0x20, 0x21, 0x22, 0x23, 0x24]
        gaps = [later - earlier for (earlier, _), (later, _) in zip(sends, sends[1:], strict=False)]
        assert all(abs(gap - TICK_SECONDS) < 1e-9 for gap in gaps)  # paced, not flushed at once
        # The talk spurt was moved to the next slot: it starts within 5 ms, not up to 20.
        assert 0 < sends[0][0] - pushed_at <= SLOT_SECONDS
        assert len(leg.rewound) == 1 and leg.rewound[0] > 0
    finally:
        bridge.stop("done")
