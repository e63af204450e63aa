"""What ``trunkline call`` prints."""

from __future__ import annotations

from pathlib import Path

from trunkline.testcall.media import MediaCounts
from trunkline.testcall.summary import CallSummary


def test_an_unanswered_call_says_why_first() -> None:
    summary = CallSummary("+15550100999", "127.0.0.1:5060", status=404, reason="Not Found")
    assert summary.lines() == [
        "answered: no (404 Not Found)",
        "dialled: +15550100999 at 127.0.0.1:5060",
    ]
    assert CallSummary("1", "h:1").lines()[0] == "answered: no (no answer)"


def test_an_answered_call_reports_each_direction_and_the_method_of_the_round_trip() -> None:
    counts = MediaCounts(
        audio_sent=250, dtmf_packets_sent=8, audio_received=251, audio_with_sound=3
    )
    counts.malformed_received, counts.other_received = 2, 1
    summary = CallSummary(
        "+15550100000",
        "127.0.0.1:5060",
        answered=True,
        status=200,
        hung_up_by="trunkline",
        seconds=3.25,
        counts=counts,
        round_trip_ms=41.0,
        recording=Path("out.wav"),
        recording_seconds=3.2,
    )
    assert summary.lines() == [
        "answered: yes",
        "dialled: +15550100000 at 127.0.0.1:5060",
        "hung up by: trunkline after 3.2 s",
        "frames sent: 250 audio, 8 DTMF event packets",
        "frames received: 251 audio (3 with sound), 0 DTMF",
        "round trip: 41.0 ms (marker tone sent -> first frame of its echo)",
        "dropped: 2 malformed packets, 1 of other payload types",
        "recording: out.wav (3.2 s)",
    ]
    summary.round_trip_ms = None
    assert summary.lines()[5].startswith("round trip: not measured")
