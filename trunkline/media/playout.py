"""Agent audio to the caller in real time: re-framed to 20 ms, paced by the shared tick.

Chunks of any size are cut into 160-byte μ-law frames and queued. Each media
tick takes one frame (or nothing: silence, while RTP time still advances).
A ``mark`` is echoed once every frame queued before it has been played;
``clear`` drops the queue and echoes pending marks at once; ``audio_done``
pads and queues the partial last frame; ``discard`` drops audio and marks
without echoing them (a redialled agent starts afresh). The queue holds at most
``max_seconds`` of audio; beyond it the oldest frames are dropped and counted.
At most ``MAX_PENDING_MARKS`` marks wait for their audio; ``mark`` refuses
more (the caller drops and counts them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from trunkline.codecs.reframe import Reframer

FRAME_BYTES = 160
MULAW_SILENCE = 0xFF
DEFAULT_MAX_SECONDS = 60.0
MAX_CHUNK_BYTES = 512 * 1024  # above the largest media payload an agent frame may carry
MAX_PENDING_MARKS = 1024


class Playout:
    __slots__ = (
        "_frames",
        "_marks",
        "_played",
        "_queued",
        "_reframer",
        "dropped_frames",
        "max_frames",
        "on_mark",
    )

    def __init__(
        self, on_mark: Callable[[str], None], *, max_seconds: float = DEFAULT_MAX_SECONDS
    ) -> None:
        self.on_mark = on_mark
        self.max_frames = max(1, int(max_seconds * 50))
        self._frames: deque[bytes] = deque()
        # Big enough for the largest agent chunk: the backlog bound is max_frames, not this.
        self._reframer = Reframer(FRAME_BYTES, max_pending=MAX_CHUNK_BYTES)
        self._marks: deque[tuple[int, str]] = deque()  # (frames queued before it, name)
        self._played = 0  # frames taken from the queue so far
        self._queued = 0  # frames ever queued
        self.dropped_frames = 0

    @property
    def backlog_frames(self) -> int:
        return len(self._frames)

    @property
    def queued_total(self) -> int:
        """Frames ever queued (the next frame queued is number ``queued_total + 1``)."""
        return self._queued

    @property
    def played_total(self) -> int:
        """Frames taken from the queue so far (played, or dropped as the oldest)."""
        return self._played

    @property
    def backlog_seconds(self) -> float:
        return len(self._frames) / 50

    def push(self, audio: bytes) -> int:
        """Queue ``audio`` (any length: re-framed to 20 ms); returns how many frames the
        backlog grew by (0: the audio completed no frame, or the backlog was full and its
        oldest frames were dropped for it)."""
        frames = self._frames
        before = len(frames)
        for frame in self._reframer.push(audio):
            if len(frames) < self.max_frames:  # ``_enqueue``, inline: once per frame
                frames.append(frame)
                self._queued += 1
            else:
                self._enqueue(frame)
        return len(frames) - before

    def _enqueue(self, frame: bytes) -> None:
        if len(self._frames) >= self.max_frames:
            self._frames.popleft()
            self._played += 1  # counts as consumed so marks stay aligned
            self.dropped_frames += 1
        self._frames.append(frame)
        self._queued += 1

    def audio_done(self) -> None:
        rest = self._reframer.flush(pad=True, fill=MULAW_SILENCE)
        if rest is not None:
            self._enqueue(rest)
        self._release_marks()

    @property
    def pending_marks(self) -> int:
        return len(self._marks)

    def mark(self, name: str) -> bool:
        """Echo ``name`` when everything queued so far has played (now, if nothing is queued).

        False: ``MAX_PENDING_MARKS`` already wait, and this one is refused.
        """
        if len(self._marks) >= MAX_PENDING_MARKS:
            return False
        pending = self._reframer.flush(pad=True, fill=MULAW_SILENCE)
        if pending is not None:
            self._enqueue(pending)
        self._marks.append((self._queued, name))
        self._release_marks()
        return True

    def clear(self) -> None:
        self._frames.clear()
        self._reframer.clear()
        self._played = self._queued
        self._release_marks()

    def discard(self) -> tuple[int, int]:
        """Drop queued audio and pending marks unechoed (the socket that sent them is gone).

        Returns how many frames and marks were dropped.
        """
        frames, marks = len(self._frames), len(self._marks)
        self._frames.clear()
        self._reframer.clear()
        self._played = self._queued
        self._marks.clear()
        return frames, marks

    def tick(self) -> bytes | None:
        """The frame for this 20 ms slot, or None for silence."""
        if not self._frames:
            return None
        frame = self._frames.popleft()
        self._played += 1
        if self._marks:
            self._release_marks()
        return frame

    def _release_marks(self) -> None:
        while self._marks and self._marks[0][0] <= self._played:
            self.on_mark(self._marks.popleft()[1])
