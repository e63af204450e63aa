"""What ``trunkline call`` reports about a test call."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trunkline.testcall.media import MediaCounts


@dataclass(slots=True)
class CallSummary:
    number: str
    target: str  # host:port dialled
    answered: bool = False
    status: int | None = None  # the INVITE's final SIP status, None without one
    reason: str = ""
    hung_up_by: str | None = None  # "caller" (this tool) or "trunkline"; None when not answered
    seconds: float = 0.0  # from the answer to the hang-up
    counts: MediaCounts = field(default_factory=MediaCounts)
    round_trip_ms: float | None = None
    recording: Path | None = None
    recording_seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary as ``name: value`` lines, the first saying whether the call was answered."""
        status = f"{self.status} {self.reason}".strip() if self.status else self.reason
        if not self.answered:
            return [
                f"answered: no ({status or 'no answer'})",
                f"dialled: {self.number} at {self.target}",
            ]
        counts = self.counts
        if self.round_trip_ms is None:
            round_trip = "not measured (the marker tone did not come back: the agent does not echo)"
        else:
            round_trip = (
                f"{self.round_trip_ms:.1f} ms (marker tone sent -> first frame of its echo)"
            )
        lines = [
            "answered: yes",
            f"dialled: {self.number} at {self.target}",
            f"hung up by: {self.hung_up_by} after {self.seconds:.1f} s",
            f"frames sent: {counts.audio_sent} audio, {counts.dtmf_packets_sent} DTMF event packets",
            f"frames received: {counts.audio_received} audio"
            f" ({counts.audio_with_sound} with sound), {counts.dtmf_packets_received} DTMF",
            f"round trip: {round_trip}",
        ]
        if counts.malformed_received or counts.other_received:
            lines.append(
                f"dropped: {counts.malformed_received} malformed packets,"
                f" {counts.other_received} of other payload types"
            )
        if self.recording is not None:
            lines.append(f"recording: {self.recording} ({self.recording_seconds:.1f} s)")
        return lines
