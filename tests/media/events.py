"""A ``MediaEvents`` that notes what a media session reported, for tests."""

from __future__ import annotations

from pathlib import Path

from trunkline.media.speech_work import Party


class NotedEvents:
    def __init__(self) -> None:
        self.stopped: list[str | None] = []
        self.overflowed = 0
        self.transcripts: list[tuple[str, str]] = []
        self.segments: list[tuple[Party, str, int]] = []
        self.recordings: list[tuple[str, Path]] = []
        self.media_failures = 0

    def agent_stopped(self, reason: str | None) -> None:
        self.stopped.append(reason)

    def agent_overflowed(self) -> None:
        self.overflowed += 1

    def agent_transcript(self, party: str, text: str) -> None:
        self.transcripts.append((party, text))

    async def store_segment(self, party: Party, text: str, ts_ms: int) -> None:
        self.segments.append((party, text, ts_ms))

    def recording_finished(self, call_id: str, path: Path) -> None:
        self.recordings.append((call_id, path))

    def media_failed(self) -> None:
        self.media_failures += 1
