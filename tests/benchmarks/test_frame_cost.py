"""The instruction-count workload carries every frame both ways through the real media objects."""

from __future__ import annotations

import pytest

from benchmarks import frame_cost


@pytest.mark.parametrize("profile", frame_cost.PROFILES)
async def test_the_workload_carries_every_frame_pair(profile: str) -> None:
    counters = await frame_cost.workload(frames=30, prepared=40, profile=profile)
    assert frame_cost.workload_error(counters, 30, profile) is None
    assert (counters["frames_to_agent"], counters["frames_to_caller"]) == (30, 30)


def test_a_binary_run_that_sent_json_is_refused() -> None:
    json_run = {
        "frames_to_agent": 30,
        "frames_to_caller": 30,
        "agent_frames_rejected": 0,
        "held_by_jitter_buffer": 0,
        "bytes_to_agent": 30 * 340,
    }
    assert frame_cost.workload_error(json_run, 30, "mulaw") is None
    assert "not go to the agent as binary" in str(frame_cost.workload_error(json_run, 30, "binary"))


def test_the_agent_handshake_answer_is_the_one_rfc_6455_gives() -> None:
    request = b"GET / HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in frame_cost.handshake_answer(
        request
    )
