"""Arbitrary byte chunks in, exact fixed-size frames out (20 ms of audio, usually).

Pending bytes are bounded: beyond ``max_pending`` the oldest whole frames are
dropped and counted, so a sender that outruns playback cannot grow memory.
"""

from __future__ import annotations


def frame_bytes(sample_rate: int, bytes_per_sample: int, frame_ms: int = 20) -> int:
    """Size of one frame, e.g. 160 for μ-law at 8 kHz, 640 for PCM16 at 16 kHz."""
    return sample_rate * frame_ms // 1000 * bytes_per_sample


class Reframer:
    __slots__ = ("_buffer", "dropped_bytes", "frame_size", "max_pending")

    def __init__(self, frame_size: int, max_pending: int | None = None) -> None:
        if frame_size <= 0:
            raise ValueError("frame_size must be positive")
        self.frame_size = frame_size
        self.max_pending = max_pending if max_pending is not None else frame_size * 3000
        if self.max_pending < frame_size:
            raise ValueError("max_pending must hold at least one frame")
        self._buffer = bytearray()
        self.dropped_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a whole frame (plus unread whole frames)."""
        return len(self._buffer)

    def push(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Add a chunk and return every complete frame now available, oldest first."""
        buffer = self._buffer
        size = self.frame_size
        if not buffer and len(chunk) == size:
            return [bytes(chunk)]  # the usual chunk: one whole frame, nothing pending
        buffer += chunk
        held = len(buffer)
        if held < size:
            return []
        if held > self.max_pending:
            drop = -(-(held - self.max_pending) // size) * size  # whole frames, oldest
            del buffer[:drop]
            self.dropped_bytes += drop
            held -= drop
        whole = held - held % size
        if whole == size:  # the common case: one frame completed
            frame = bytes(buffer[:size])
            del buffer[:size]
            return [frame]
        frames = [bytes(buffer[i : i + size]) for i in range(0, whole, size)]
        del buffer[:whole]
        return frames

    def flush(self, pad: bool = True, fill: int = 0) -> bytes | None:
        """The partial frame left over: zero-padded (or ``fill``-padded) to a frame, or raw."""
        if not self._buffer:
            return None
        rest = bytes(self._buffer)
        self._buffer.clear()
        if pad:
            rest += bytes([fill]) * (self.frame_size - len(rest))
        return rest

    def clear(self) -> int:
        """Drop everything pending; returns how many bytes were dropped."""
        count = len(self._buffer)
        self._buffer.clear()
        return count
