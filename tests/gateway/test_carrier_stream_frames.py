"""Carrier media-stream frames, audio and re-ordering, driven directly (no sockets)."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from trunkline.codecs.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from trunkline.gateway.carriers.media_stream import (
    CarrierAudio,
    CarrierStreamError,
    Reorder,
    StreamDtmf,
    StreamMedia,
    StreamOther,
    StreamStart,
    StreamStop,
    media_frame,
    parse_carrier_frame,
)


def test_telnyx_start_media_dtmf_stop() -> None:
    start = parse_carrier_frame(
        json.dumps(
            {
                "event": "start",
                "sequence_number": "1",
                "stream_id": "S1",
                "start": {
                    "call_control_id": "v2:x",
                    "from": "+14155550123",
                    "to": "+15550100001",
                    "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
                },
            }
        ),
        "telnyx",
    )
    assert start == StreamStart("S1", "v2:x", "+15550100001", "+14155550123", "L16", 16000, {}, 1)
    media = parse_carrier_frame(
        '{"event":"media","sequence_number":"7","media":{"track":"inbound","payload":"AAE="}}',
        "telnyx",
    )
    assert media == StreamMedia(b"\x00\x01", 7)
    assert parse_carrier_frame('{"event":"dtmf","dtmf":{"digit":"#"}}', "telnyx") == StreamDtmf("#")
    assert parse_carrier_frame('{"event":"stop"}', "telnyx") == StreamStop()
    outbound = '{"event":"media","media":{"track":"outbound","payload":"AA=="}}'
    assert parse_carrier_frame(outbound, "telnyx") == StreamOther("media:outbound")


@pytest.mark.parametrize(
    "frame",
    [
        "{",
        '{"event":"start","start":{}}',
        '{"event":"start","stream_id":"s","start":{"call_control_id":"c",'
        '"media_format":{"encoding":"OPUS","sample_rate":48000}}}',
        '{"event":"start","stream_id":"s","start":{"call_control_id":"c",'
        '"media_format":{"encoding":"PCMU","sample_rate":16000}}}',
        '{"event":"media","media":{"payload":"%%%"}}',
        '{"event":"dtmf","dtmf":{"digit":"12"}}',
        '{"no":"event"}',
        "[" * 50_000,  # deeper than the JSON decoder recurses
        '{"event":"media","media":' + '{"a":' * 50_000,
    ],
)
def test_bad_frames_are_errors(frame: str) -> None:
    with pytest.raises(CarrierStreamError):
        parse_carrier_frame(frame, "telnyx")


def test_reorder_restores_order_drops_late_and_gives_up_on_gaps() -> None:
    reorder = Reorder(window=3, after=1)
    assert reorder.push(3, b"c") == []
    assert reorder.push(2, b"b") == [b"b", b"c"]
    assert reorder.push(2, b"b") == [] and reorder.dropped_late == 1
    assert reorder.push(4, None) == []  # a numbered DTMF frame is not a gap
    assert reorder.push(5, b"e") == [b"e"]
    # 6 never comes: once the window is full, delivery resumes at the oldest held frame.
    assert [reorder.push(n, bytes([n])) for n in (7, 8, 9)] == [[], [], []]
    assert reorder.push(10, b"\x0a") == [b"\x07", b"\x08", b"\x09", b"\x0a"]
    assert reorder.gaps == 1
    assert reorder.push(6, b"late") == [] and reorder.dropped_late == 2


def test_l16_from_the_carrier_is_network_byte_order_and_resampled() -> None:
    audio = CarrierAudio("L16", 16000)
    t = np.arange(16000) / 16000
    tone = (8000 * np.sin(2 * math.pi * 1000 * t)).astype(">i2").tobytes()  # big-endian
    mulaw = b"".join(audio.to_mulaw(tone[i : i + 640]) for i in range(0, len(tone), 640))
    assert len(mulaw) == 8000  # one second of 8 kHz μ-law: nothing held back
    decoded = np.frombuffer(ulaw_to_pcm16(mulaw), dtype="<i2").astype(float)[400:]
    spectrum = np.abs(np.fft.rfft(decoded))
    peak_hz = np.argmax(spectrum) * 8000 / decoded.size
    assert abs(peak_hz - 1000) < 5  # still a 1 kHz tone: the byte order was right
    back = audio.from_mulaw(pcm16_to_ulaw(np.full(160, 1000, dtype="<i2").tobytes()))
    assert len(back) == 0 or np.frombuffer(back, dtype=">i2").max() > 0


def test_frames_back_to_the_carrier() -> None:
    twilio = json.loads(media_frame("twilio", "MZ1", b"\x01\x02"))
    assert twilio == {"event": "media", "streamSid": "MZ1", "media": {"payload": "AQI="}}
    telnyx = json.loads(media_frame("telnyx", "S", b"\x01\x02"))
    assert telnyx == {
        "event": "media",
        "media": {"payload": base64.b64encode(b"\x01\x02").decode()},
    }
