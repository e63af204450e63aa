"""Call recording: two channels (caller left, agent right), 8 kHz PCM16 WAV, written off the loop.

``CallRecorder`` (one per call, on the hot path) collects the caller's frames
as they arrive and, on each media-clock slot, pairs the caller audio of that
20 ms with the frame played to the caller; every second it hands one block of
interleaved samples to the ``RecordingWriter``. The writer is one thread per
process behind a bounded queue: it appends each block to
``<call>.wav.partial`` (handed to the kernel at once, so a killed process
loses at most the last second; the file is synced to disk once, at hang-up).
At hang-up the file is closed (its header made right) and renamed to
``<call>.wav``; ``repair_partials`` fixes the header of any partial file a
crash left behind, at start-up, so it plays with the audio it holds. Nothing
here blocks the event loop: a full queue drops the block and counts it.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from trunkline.data_dir import PRIVATE_FILE_MODE, private_directory

log = logging.getLogger("trunkline.recording")
SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
FRAMES_PER_BLOCK = 50  # one second per write
FRAME_NS = 20_000_000
MAX_CALLER_BACKLOG = 10 * FRAME_SAMPLES * 2  # bytes of caller PCM held between slots
QUEUE_JOBS = 4096
PARTIAL_SUFFIX = ".wav.partial"

Finished = Callable[[str, Path], None]  # (call id, final path), called on the writer thread


class RecordingWriter:
    """One thread writing every call's recording; jobs arrive through a bounded queue."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._jobs: queue.Queue[tuple[str, str, object] | None] = queue.Queue(QUEUE_JOBS)
        self._files: dict[str, soundfile.SoundFile] = {}
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self.dropped_blocks = 0
        self.failed = 0
        self._started = False

    def start(self, repair: bool = True) -> None:
        """Start the thread; ``repair``: first fix every partial file a crash left (a
        worker of ``serve --workers`` does not: its siblings' calls are being written)."""
        private_directory(self.directory)
        if repair:
            repaired = repair_partials(self.directory)
            if repaired:
                log.warning("repaired %d recordings left by a crash", repaired)
        self._thread.start()
        self._started = True

    def submit(self, kind: str, call_id: str, payload: object = None) -> bool:
        try:
            self._jobs.put_nowait((kind, call_id, payload))
            return True
        except queue.Full:
            self.dropped_blocks += 1
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued (blocking: call it from a thread at shutdown)."""
        if not self._started:
            return
        self._jobs.put(None, timeout=timeout)
        self._thread.join(timeout)

    def path_for(self, call_id: str) -> Path:
        return self.directory / f"{call_id}.wav"

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                for call_id in list(self._files):
                    self._close(call_id, None)
                return
            kind, call_id, payload = job
            try:
                if kind == "open":
                    partial = self.directory / f"{call_id}{PARTIAL_SUFFIX}"
                    self._files[call_id] = soundfile.SoundFile(
                        partial, "w", samplerate=SAMPLE_RATE, channels=2,
                        subtype="PCM_16", format="WAV",
                    )  # fmt: skip
                    os.chmod(partial, PRIVATE_FILE_MODE)  # whatever the umask
                elif kind == "write" and call_id in self._files:
                    # libsndfile hands each block to the kernel at once (write(2)), so a
                    # killed process loses nothing written; no fsync per block.
                    self._files[call_id].buffer_write(payload, dtype="int16")
                elif kind == "close":
                    self._close(call_id, payload)  # type: ignore[arg-type]
            except Exception:
                self.failed += 1
                log.exception("recording %s failed", kind, extra={"call_id": call_id})

    def _close(self, call_id: str, finished: Finished | None) -> None:
        handle = self._files.pop(call_id, None)
        if handle is None:
            return
        handle.flush()  # once per call: the finished file reaches the disk
        handle.close()
        final = self.path_for(call_id)
        os.replace(self.directory / f"{call_id}{PARTIAL_SUFFIX}", final)
        if finished is not None:
            finished(call_id, final)


class CallRecorder:
    """One call's two channels, assembled on the media clock (no allocation per frame)."""

    __slots__ = ("_agent", "_ahead_ns", "_caller", "_caller_block", "_frames", "call_id", "writer")

    def __init__(self, writer: RecordingWriter, call_id: str) -> None:
        self.writer = writer
        self.call_id = call_id
        self._caller = bytearray()  # caller PCM not yet given a slot
        self._caller_block = bytearray()
        self._agent = bytearray()
        self._frames = 0
        self._ahead_ns = 0  # how far rephased slots ran ahead of wall time
        writer.submit("open", call_id)

    def caller(self, pcm: bytes) -> None:
        """One frame of the caller as PCM16 (the session decodes it once for all its taps)."""
        self._caller += pcm
        excess = len(self._caller) - MAX_CALLER_BACKLOG
        if excess > 0:
            del self._caller[:excess]

    def slot(self, played: bytes | None) -> None:
        """One 20 ms slot: the caller audio of that time, and what was played to them (PCM16)."""
        if self._ahead_ns >= FRAME_NS:
            # Rephased slots came early: skip one so the recording keeps wall time.
            self._ahead_ns -= FRAME_NS
            return
        size = FRAME_SAMPLES * 2
        taken = self._caller[:size]
        del self._caller[:size]
        self._caller_block += taken
        if len(taken) < size:
            self._caller_block += bytes(size - len(taken))
        self._agent += played if played is not None else bytes(size)
        self._frames += 1
        if self._frames >= FRAMES_PER_BLOCK:
            self._flush()

    def rephased(self, earlier_seconds: float) -> None:
        """The next slot comes this much sooner than the 20 ms cadence said."""
        self._ahead_ns += int(earlier_seconds * 1e9)

    def _flush(self) -> None:
        if not self._frames:
            return
        left = np.frombuffer(self._caller_block, dtype="<i2")
        right = np.frombuffer(self._agent, dtype="<i2")
        self.writer.submit("write", self.call_id, np.column_stack((left, right)).tobytes())
        self._caller_block = bytearray()
        self._agent = bytearray()
        self._frames = 0

    def finish(self, finished: Finished | None = None) -> None:
        self._flush()
        self.writer.submit("close", self.call_id, finished)


def repair_partials(directory: Path) -> int:
    """Give each crash-left ``.wav.partial`` a correct header and its final name."""
    repaired = 0
    for partial in sorted(directory.glob(f"*{PARTIAL_SUFFIX}")):
        try:
            repair_partial(partial)
            repaired += 1
        except FileNotFoundError:
            pass  # another worker repaired it (its call) in the meantime
        except (OSError, ValueError) as exc:
            log.error("cannot repair %s: %s", partial.name, exc)
    return repaired


def repair_partial(partial: Path) -> Path:
    """Fix one crash-left ``.wav.partial`` and rename it ``.wav``; returns the new path."""
    final = partial.with_name(partial.name.removesuffix(".partial"))
    _fix_wav_header(partial)
    os.chmod(partial, PRIVATE_FILE_MODE)
    os.replace(partial, final)
    return final


def recorded_seconds(path: Path) -> float:
    """How long a finished (or repaired) recording plays."""
    info = soundfile.info(str(path))
    return float(info.frames) / info.samplerate


def _fix_wav_header(path: Path) -> None:
    """Rewrite the RIFF and data sizes from the file's length (whole stereo frames only)."""
    with path.open("r+b") as handle:
        head = handle.read(4096)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError("not a WAV file")
        offset = 12
        while offset + 8 <= len(head):
            chunk, size = head[offset : offset + 4], struct.unpack_from("<I", head, offset + 4)[0]
            if chunk == b"data":
                break
            offset += 8 + size + (size & 1)
        else:
            raise ValueError("no data chunk")
        file_size = handle.seek(0, os.SEEK_END)
        data_size = (file_size - offset - 8) // 4 * 4
        handle.truncate(offset + 8 + data_size)
        handle.seek(4)
        handle.write(struct.pack("<I", offset + data_size))
        handle.seek(offset + 4)
        handle.write(struct.pack("<I", data_size))
