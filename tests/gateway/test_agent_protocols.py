"""The agent wire protocols and audio formats, driven directly (no sockets)."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.codecs.oracle import audioop
from trunkline.agent.formats import AGENT_FORMATS, AgentToCaller, CallerToAgent
from trunkline.agent.inkbox_protocol import (
    AgentAudioDone,
    AgentClear,
    AgentMark,
    AgentMedia,
    AgentProtocolError,
    AgentStop,
    AgentTranscript,
    parse_agent_frame,
)
from trunkline.agent.persona import InkboxPersona
from trunkline.agent.twilio_protocol import (
    TwilioPersona,
    account_sid_for,
    call_id_from_sid,
    parse_twilio_agent_frame,
)

AUDIO = bytes(range(160))
B64 = base64.b64encode(AUDIO).decode()
CALL_ID = "0b9e0c52-5a55-4c1e-9d7a-1f0f6d1c2b3a"
STREAM_ID = "5d0b5f4e-8c1a-4f27-b3d6-0a9e7c6b5d41"


def test_inkbox_frames_parse_to_messages() -> None:
    assert parse_agent_frame(json.dumps({"event": "media", "media": {"payload": B64}})) == (
        AgentMedia(AUDIO)
    )
    assert parse_agent_frame('{"event":"mark","mark":{"name":"m1"}}') == AgentMark("m1")
    assert parse_agent_frame('{"event":"clear"}') == AgentClear()
    assert parse_agent_frame('{"event":"audio_done"}') == AgentAudioDone()
    assert parse_agent_frame('{"event":"stop","reason":"bye"}') == AgentStop("bye")
    assert parse_agent_frame('{"event":"transcript","party":"remote","text":"hi"}') == (
        AgentTranscript("remote", "hi", True)
    )


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[]",
        '{"event":"media"}',
        '{"event":"media","media":{"payload":"***"}}',
        '{"event":"mark","mark":{"name":7}}',
        '{"event":"transcript","party":"both","text":"x"}',
        '{"event":"dance"}',
        '{"event":"media","media":{"payload":"' + "A" * 2_000_000 + '"}}',
        "[" * 50_000,  # deeper than the JSON decoder recurses
        '{"event":"mark","mark":' + '{"a":' * 50_000,
    ],
)
@pytest.mark.parametrize("parse", [parse_agent_frame, parse_twilio_agent_frame])
def test_bad_frames_raise_protocol_errors(frame: str, parse: object) -> None:
    with pytest.raises(AgentProtocolError):
        parse(frame)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "not_json"),
        ("[]", "not_object"),
        ("[" * 50_000, "too_deep"),
        ('{"event":"media","payload":"' + B64 + '"}', "flat_media"),
        ('{"event":"media"}', "bad_media"),
        ('{"event":"media","media":{"payload":7}}', "bad_media"),
        ('{"event":"media","media":{"payload":"***"}}', "bad_base64"),
        ('{"event":"mark","mark":{"name":7}}', "bad_mark"),
        ('{"event":"hangup"}', "unknown_event"),
    ],
)
@pytest.mark.parametrize("parse", [parse_agent_frame, parse_twilio_agent_frame])
def test_each_rejection_names_its_reason(frame: str, reason: str, parse: object) -> None:
    with pytest.raises(AgentProtocolError) as caught:
        parse(frame)  # type: ignore[operator]
    assert caught.value.reason == reason


def test_a_flat_media_frame_is_told_apart_from_a_missing_payload() -> None:
    with pytest.raises(AgentProtocolError) as caught:
        parse_twilio_agent_frame(json.dumps({"event": "media", "payload": B64}))
    assert str(caught.value).startswith("media frame without media.payload: a flat")
    assert "is not Twilio's shape" in str(caught.value)


@given(st.text(max_size=300) | st.builds(json.dumps, st.dictionaries(st.text(), st.text())))
def test_fuzzed_frames_never_raise_anything_else(text: str) -> None:
    for parse in (parse_agent_frame, parse_twilio_agent_frame):
        with contextlib.suppress(AgentProtocolError):
            parse(text)


def test_twilio_persona_counts_in_strings_and_parses_twilio_replies() -> None:
    persona = TwilioPersona(CALL_ID, "org-1", STREAM_ID)
    connected, start = (json.loads(f) for f in persona.opening(AGENT_FORMATS["mulaw8k"], {}))
    assert connected["event"] == "connected"
    assert start["sequenceNumber"] == "1" and start["streamSid"] == persona.stream_sid
    first, second = json.loads(persona.media(AUDIO)), json.loads(persona.media(AUDIO))
    assert (first["sequenceNumber"], first["media"]["chunk"], first["media"]["timestamp"]) == (
        "2",
        "1",
        "0",
    )
    assert (second["sequenceNumber"], second["media"]["chunk"], second["media"]["timestamp"]) == (
        "3",
        "2",
        "20",
    )
    assert base64.b64decode(first["media"]["payload"]) == AUDIO
    assert json.loads(persona.dtmf("5"))["dtmf"] == {"track": "inbound_track", "digit": "5"}
    assert json.loads(persona.mark("x"))["sequenceNumber"] == "5"
    reply = {"event": "media", "streamSid": persona.stream_sid, "media": {"payload": B64}}
    assert persona.parse(json.dumps(reply)) == AgentMedia(AUDIO)
    assert persona.parse('{"event":"clear","streamSid":"MZ1"}') == AgentClear()
    # The callSid names the call (the REST hang-up finds it); each stream has its own sid.
    assert persona.call_sid == "CA" + CALL_ID.replace("-", "")
    assert call_id_from_sid(persona.call_sid) == CALL_ID
    assert persona.stream_sid == "MZ" + STREAM_ID.replace("-", "")
    again = TwilioPersona(CALL_ID, "org-1", str(uuid.uuid4()))
    assert again.call_sid == persona.call_sid and again.stream_sid != persona.stream_sid
    assert persona.account_sid == account_sid_for("org-1") != account_sid_for("org-2")
    for sid in ("CA" + "0" * 31, "CA" + "G" * 32, "CA" + "A" * 32, "MZ" + "0" * 32, ""):
        assert call_id_from_sid(sid) is None


def test_inkbox_persona_matches_the_specified_frames() -> None:
    persona = InkboxPersona("call-1", "stream-1")
    (start,) = (json.loads(f) for f in persona.opening(AGENT_FORMATS["pcm16_16k"], {}))
    assert start["start"]["media_format"]["sample_rate"] == 16000
    media = json.loads(persona.media(AUDIO))
    assert media["stream_id"] == "stream-1" and media["media"]["track"] == "inbound"
    assert json.loads(persona.stop("remote")) == {"event": "stop", "reason": "remote"}


def test_mulaw_is_a_pass_through_and_alaw_one_translate() -> None:
    to_agent = CallerToAgent(AGENT_FORMATS["mulaw8k"], codec="PCMU")
    view = memoryview(AUDIO)
    assert to_agent.convert(view) is view  # not even a copy
    alaw = CallerToAgent(AGENT_FORMATS["mulaw8k"], codec="PCMA")
    alaw_frame = bytes(range(256))
    expected = audioop.lin2ulaw(audioop.alaw2lin(alaw_frame, 2), 2)
    assert alaw.convert(alaw_frame) == expected
    assert AgentToCaller(AGENT_FORMATS["mulaw8k"]).convert(AUDIO) is AUDIO


@pytest.mark.parametrize("name", ["pcm16_8k", "pcm16_16k", "pcm16_24k"])
def test_pcm_agent_audio_in_odd_chunks_equals_one_piece(name: str) -> None:
    rate = AGENT_FORMATS[name].sample_rate
    t = np.arange(rate) / rate
    pcm = (6000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    whole = AgentToCaller(AGENT_FORMATS[name]).convert(pcm)
    chunked = AgentToCaller(AGENT_FORMATS[name])
    rng = np.random.default_rng(7)
    out, position = bytearray(), 0
    while position < len(pcm):
        size = int(rng.integers(1, 999))  # odd sizes split samples between chunks
        out += chunked.convert(pcm[position : position + size])
        position += size
    assert len(out) == len(whole)
    difference = np.abs(
        np.frombuffer(bytes(out), dtype=np.uint8).astype(int)
        - np.frombuffer(whole, dtype=np.uint8).astype(int)
    )
    assert np.mean(difference == 0) > 0.98  # identical codes but for rounding at a few edges
