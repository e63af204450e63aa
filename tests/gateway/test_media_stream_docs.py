"""docs/media-stream.md shows every frame each way: its examples must be what the code does.

Frames trunkline sends are built by the personas and compared with the
documented ones by shape (the same keys at every level, the same JSON types);
frames the agent sends must parse.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from trunkline.agent.formats import AGENT_FORMATS
from trunkline.agent.inkbox_protocol import (
    barge_in_frame,
    parse_agent_frame,
    transcript_frame,
)
from trunkline.agent.persona import InkboxPersona
from trunkline.agent.twilio_protocol import TwilioPersona, parse_twilio_agent_frame

DOC = Path(__file__).resolve().parents[2] / "docs" / "media-stream.md"
CALL_ID = "0b9e0c52-5a55-4c1e-9d7a-1f0f6d1c2b3a"
STREAM_ID = "6f1c0b52-3f3e-4a8b-9d61-2b1b9a0c4e17"
CUSTOM = {"call_id": CALL_ID, "from": "+14155550123", "to": "+15550100001", "direction": "inbound"}


def documented(heading: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The (trunkline → agent, agent → trunkline) frames under a protocol's heading."""
    text = DOC.read_text()
    section = text[text.index(heading) :]
    section = section[: section.index("\n### ", 1)]
    blocks = re.findall(r"```json\n(.*?)```", section, re.S)
    sent, received = ([json.loads(line) for line in block.splitlines()] for block in blocks[:2])
    return sent, received


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def by_event(frames: list[str]) -> dict[str, Any]:
    return {frame["event"]: shape(frame) for frame in map(json.loads, frames)}


def test_the_documented_inkbox_frames_are_the_ones_trunkline_sends_and_accepts() -> None:
    sent, received = documented("### `inkbox`")
    persona = InkboxPersona(CALL_ID, STREAM_ID)
    built = [
        *persona.opening(AGENT_FORMATS["mulaw8k"], CUSTOM),
        persona.media(b"\xff" * 16),
        persona.dtmf("5"),
        persona.mark("greeting-done"),
        transcript_frame("I'd like to book a table", is_final=True, turn_id=3),
        barge_in_frame("wait", tts_interrupted=True, turn_id=4),
        persona.stop("remote"),
    ]
    assert [shape(frame) for frame in sent] == list(by_event(built).values())
    for frame in received:
        parse_agent_frame(json.dumps(frame))  # raises if the documented frame is refused


def test_the_documented_twilio_frames_are_the_ones_trunkline_sends_and_accepts() -> None:
    sent, received = documented("### `twilio`")
    persona = TwilioPersona(CALL_ID, "org-1", STREAM_ID)
    built = [
        *persona.opening(AGENT_FORMATS["mulaw8k"], CUSTOM),
        persona.media(b"\xff" * 16),
        persona.dtmf("5"),
        persona.mark("greeting-done"),
        persona.stop("remote"),
    ]
    assert [shape(frame) for frame in sent] == list(by_event(built).values())
    # The ids are the code's: streamSid from the stream, callSid from the call id.
    start = sent[1]["start"]
    assert (start["streamSid"], start["callSid"]) == (persona.stream_sid, persona.call_sid)
    assert [frame["sequenceNumber"] for frame in sent[1:]] == ["1", "2", "3", "4", "5"]
    for frame in received:
        parse_twilio_agent_frame(json.dumps(frame))


@pytest.mark.parametrize("heading", ["### `inkbox`", "### `twilio`"])
def test_every_event_an_agent_may_send_is_documented(heading: str) -> None:
    _, received = documented(heading)
    events = {frame["event"] for frame in received}
    accepted = (
        {"media", "text", "audio_done", "mark", "clear", "transcript", "stop"}
        if "inkbox" in heading
        else {"media", "mark", "clear", "stop"}
    )
    assert events == accepted
