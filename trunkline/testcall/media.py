"""The test caller's RTP, sans-I/O: what to send on each 20 ms tick, what came back.

``CallerMedia`` is fed the time by its transport and never touches a socket.
Outgoing, it follows a script fixed before the call: a little silence, the
marker burst, the audio file to play, the DTMF digits as RFC 4733 events, then
silence until the call ends. Incoming, it counts frames, keeps the caller's
recording (bounded) and notes when the marker first comes back: the round-trip
delay is that frame's arrival time minus the send time of the marker's first
frame, so it is measured to one frame (20 ms) plus the scheduling of both ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.codecs.dtmf import DTMF_KEYS, TelephoneEvent, encode_event
from trunkline.gateway.rtp.packet import RtpParseError, build_packet, parse_packet
from trunkline.testcall.audio import FRAME_BYTES, ULAW_SILENCE, carries_marker, marker_frames

PCMU = 0
TELEPHONE_EVENT = 101
LEAD_FRAMES = 10  # silence before the marker: 200 ms for the path to settle
DIGIT_FRAMES = 5  # each key is held 100 ms
DIGIT_END_REPEATS = 3  # the end packet is sent three times (RFC 4733 §2.5.1.4)
DIGIT_GAP_FRAMES = 5  # 100 ms between keys
DIGIT_VOLUME = 10  # -10 dBm0
SILENT_CODES = b"\xff\x7f"  # mu-law zero, both signs


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One tick's packet: audio, or a telephone event begun ``event_age`` ticks ago."""

    payload: bytes
    payload_type: int = PCMU
    marker: bool = False
    event_age: int = 0


@dataclass(slots=True)
class MediaCounts:
    audio_sent: int = 0
    dtmf_packets_sent: int = 0
    audio_received: int = 0
    audio_with_sound: int = 0  # received frames that are not digital silence
    dtmf_packets_received: int = 0
    other_received: int = 0  # other payload types
    malformed_received: int = 0
    recording_overflow: int = 0  # received frames beyond the recording's capacity


def dtmf_script(digits: str) -> list[Outgoing]:
    """The packets that press ``digits`` one after another; ValueError for a bad key."""
    script: list[Outgoing] = []
    for digit in digits:
        if digit not in DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {digit!r} (use 0-9, *, #, A-D)")
        for age in range(DIGIT_FRAMES):
            event = TelephoneEvent(digit, False, DIGIT_VOLUME, (age + 1) * FRAME_BYTES)
            script.append(Outgoing(encode_event(event), TELEPHONE_EVENT, age == 0, age))
        final = encode_event(TelephoneEvent(digit, True, DIGIT_VOLUME, DIGIT_FRAMES * FRAME_BYTES))
        for repeat in range(DIGIT_END_REPEATS):
            script.append(Outgoing(final, TELEPHONE_EVENT, False, DIGIT_FRAMES + repeat))
        script.extend(Outgoing(ULAW_SILENCE) for _ in range(DIGIT_GAP_FRAMES))
    return script


def call_script(play: list[bytes], digits: str) -> list[Outgoing]:
    """Lead-in silence, the marker, the audio to play, then the digits."""
    script = [Outgoing(ULAW_SILENCE) for _ in range(LEAD_FRAMES)]
    script += [Outgoing(frame, marker=index == 0) for index, frame in enumerate(marker_frames())]
    script += [Outgoing(frame) for frame in play]
    script += dtmf_script(digits)
    return script


class CallerMedia:
    """One call's RTP in both directions; ``tick`` once per 20 ms, ``receive`` per datagram."""

    def __init__(
        self, script: list[Outgoing], record_frames: int, ssrc: int, sequence: int, timestamp: int
    ) -> None:
        self._script = script
        self._tick = 0
        self._ssrc = ssrc
        self._sequence = sequence
        self._timestamp = timestamp
        self._recording = bytearray(record_frames * FRAME_BYTES)
        self._recorded = 0
        self.counts = MediaCounts()
        self.marker_sent_at: float | None = None
        self.round_trip: float | None = None  # seconds, once the marker came back

    @property
    def script_frames(self) -> int:
        return len(self._script)

    @property
    def recording(self) -> memoryview:
        """What came back so far, mu-law, in arrival order."""
        return memoryview(self._recording)[: self._recorded]

    def tick(self, now: float) -> bytes:
        """The packet to send now."""
        index = self._tick
        item = self._script[index] if index < len(self._script) else Outgoing(ULAW_SILENCE)
        self._tick += 1
        if item.payload_type == TELEPHONE_EVENT:
            timestamp = self._timestamp + (index - item.event_age) * FRAME_BYTES
            self.counts.dtmf_packets_sent += 1
        else:
            timestamp = self._timestamp + index * FRAME_BYTES
            self.counts.audio_sent += 1
            if item.marker and self.marker_sent_at is None:
                self.marker_sent_at = now
        packet = build_packet(
            item.payload,
            payload_type=item.payload_type,
            sequence=self._sequence + index,
            timestamp=timestamp,
            ssrc=self._ssrc,
            marker=item.marker,
        )
        return packet

    def receive(self, data: bytes, now: float) -> None:
        try:
            packet = parse_packet(data)
        except RtpParseError:
            self.counts.malformed_received += 1
            return
        if packet.payload_type == TELEPHONE_EVENT:
            self.counts.dtmf_packets_received += 1
            return
        if packet.payload_type != PCMU:
            self.counts.other_received += 1
            return
        payload = packet.payload
        counts = self.counts
        counts.audio_received += 1
        if bytes(payload).strip(SILENT_CODES):
            counts.audio_with_sound += 1
            if (
                self.round_trip is None
                and self.marker_sent_at is not None
                and carries_marker(payload)
            ):
                self.round_trip = now - self.marker_sent_at
        end = self._recorded + len(payload)
        if end > len(self._recording):
            counts.recording_overflow += 1
            return
        self._recording[self._recorded : end] = payload
        self._recorded = end
