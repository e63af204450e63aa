"""The test caller's sans-I/O media: its script, its packets, what it counts and records."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from trunkline.codecs.dtmf import decode_event
from trunkline.codecs.g711 import pcm16_to_ulaw
from trunkline.gateway.rtp.packet import build_packet, parse_packet
from trunkline.testcall.audio import (
    ULAW_SILENCE,
    AudioFileError,
    carries_marker,
    load_wav_frames,
    marker_frames,
    write_wav,
)
from trunkline.testcall.media import (
    LEAD_FRAMES,
    TELEPHONE_EVENT,
    CallerMedia,
    call_script,
    dtmf_script,
)


def tone(hz: float, frames: int = 1, amplitude: float = 8000) -> bytes:
    samples = amplitude * np.sin(2 * np.pi * hz * np.arange(160 * frames) / 8000)
    return pcm16_to_ulaw(samples.astype("<i2").tobytes())


def media(
    script_audio: list[bytes] | None = None, digits: str = "", record: int = 100
) -> CallerMedia:
    return CallerMedia(call_script(script_audio or [], digits), record, 0x1234, 65530, 1000)


def test_the_marker_is_recognised_and_other_sounds_are_not() -> None:
    assert all(carries_marker(frame) for frame in marker_frames())
    assert not carries_marker(ULAW_SILENCE)
    assert not carries_marker(tone(440))
    assert not carries_marker(tone(1400, amplitude=300))  # too quiet to be the echo
    noise = np.random.default_rng(7).normal(0, 4000, 160).astype("<i2").tobytes()
    assert not carries_marker(pcm16_to_ulaw(noise))


def test_the_script_is_silence_then_marker_then_audio_then_keys() -> None:
    played = [tone(440)] * 4
    script = call_script(played, "1#")
    assert [item.payload for item in script[:LEAD_FRAMES]] == [ULAW_SILENCE] * LEAD_FRAMES
    marker = script[LEAD_FRAMES : LEAD_FRAMES + 3]
    assert [item.marker for item in marker] == [True, False, False]
    assert [item.payload for item in script[LEAD_FRAMES + 3 : LEAD_FRAMES + 7]] == played
    events = [decode_event(item.payload) for item in script if item.payload_type == TELEPHONE_EVENT]
    assert [e.digit for e in events] == ["1"] * 8 + ["#"] * 8
    assert [e.end for e in events[:8]] == [False] * 5 + [True] * 3
    assert [e.duration for e in events[:8]] == [160, 320, 480, 640, 800, 800, 800, 800]


def test_a_bad_key_is_refused_before_the_call() -> None:
    with pytest.raises(ValueError, match="not a DTMF key: 'x'"):
        dtmf_script("1x")


def test_packets_count_on_and_events_keep_their_start_timestamp() -> None:
    caller = media(digits="5")
    packets = [parse_packet(bytes(caller.tick(now=index * 0.02))) for index in range(40)]
    assert [p.sequence for p in packets[:8]] == [65530 + i & 0xFFFF for i in range(8)]
    audio = [p for p in packets if p.payload_type == 0]
    assert all(p.timestamp == 1000 + 160 * packets.index(p) for p in audio)
    events = [p for p in packets if p.payload_type == TELEPHONE_EVENT]
    assert len(events) == 8 and len({p.timestamp for p in events}) == 1
    assert events[0].marker and not any(p.marker for p in events[1:])
    assert caller.counts.audio_sent == 32 and caller.counts.dtmf_packets_sent == 8
    assert caller.marker_sent_at == pytest.approx(LEAD_FRAMES * 0.02)


def test_round_trip_is_the_marker_echo_arrival_minus_its_sending() -> None:
    caller = media()
    for index in range(LEAD_FRAMES + 3):
        sent = bytes(caller.tick(now=index * 0.02))
        if parse_packet(sent).marker:
            marker_packet = sent
    caller.receive(
        build_packet(ULAW_SILENCE, payload_type=0, sequence=1, timestamp=0, ssrc=9), 0.25
    )
    assert caller.round_trip is None
    caller.receive(marker_packet, now=LEAD_FRAMES * 0.02 + 0.045)
    assert caller.round_trip == pytest.approx(0.045)
    assert caller.counts.audio_received == 2 and caller.counts.audio_with_sound == 1


def test_what_comes_back_is_counted_and_recorded_up_to_its_capacity() -> None:
    caller = media(record=3)
    frames = [tone(440), ULAW_SILENCE, tone(600), tone(700)]
    for index, frame in enumerate(frames):
        caller.receive(build_packet(frame, payload_type=0, sequence=index, timestamp=0, ssrc=1), 0)
    caller.receive(b"\x80\x00", 0)  # shorter than a header
    caller.receive(
        build_packet(b"\x01\x8a\x00\xa0", payload_type=101, sequence=9, timestamp=0, ssrc=1), 0
    )
    caller.receive(build_packet(b"\x00" * 160, payload_type=8, sequence=10, timestamp=0, ssrc=1), 0)
    counts = caller.counts
    assert (counts.audio_received, counts.audio_with_sound) == (4, 3)
    assert (counts.malformed_received, counts.dtmf_packets_received, counts.other_received) == (
        1,
        1,
        1,
    )
    assert counts.recording_overflow == 1
    assert bytes(caller.recording) == b"".join(frames[:3])


def test_wav_files_are_read_as_ulaw_frames_and_written_as_pcm(tmp_path: Path) -> None:
    source = tmp_path / "in.wav"
    seconds = 0.25
    samples = (6000 * np.sin(2 * np.pi * 500 * np.arange(int(16000 * seconds)) / 16000)).astype(
        "<i2"
    )
    soundfile.write(source, np.stack([samples, samples], axis=1), 16000, subtype="PCM_16")
    frames = load_wav_frames(source)
    assert len(frames) == 13 and all(len(f) == 160 for f in frames)  # 250 ms, last one padded
    out = tmp_path / "out.wav"
    write_wav(out, b"".join(frames))
    with wave.open(str(out)) as written:
        assert (written.getframerate(), written.getnchannels(), written.getsampwidth()) == (
            8000,
            1,
            2,
        )
        assert written.getnframes() == 13 * 160


def test_unplayable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="cannot read"):
        load_wav_frames(tmp_path / "missing.wav")
    odd = tmp_path / "odd.wav"
    soundfile.write(odd, np.zeros(1100, dtype="<i2"), 11025, subtype="PCM_16")
    with pytest.raises(AudioFileError, match="sample rate 11025 Hz"):
        load_wav_frames(odd)
