"""The instruction-count workload carries every frame both ways through the real media objects."""

from __future__ import annotations

import pytest

from benchmarks import frame_cost


@pytest.mark.parametrize("profile", frame_cost.PROFILES)
async def test_the_workload_carries_every_frame_pair(profile: str) -> None:
    counters = await frame_cost.workload(frames=30, prepared=40, profile=profile)
    assert counters == {"frames_to_agent": 30, "frames_to_caller": 30, "agent_frames_rejected": 0}


def test_the_agent_handshake_answer_is_the_one_rfc_6455_gives() -> None:
    request = b"GET / HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in frame_cost.handshake_answer(
        request
    )
