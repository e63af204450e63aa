"""Streaming sample-rate conversion of mono PCM16 between 8 kHz and 16/24/48 kHz.

One ``StreamingResampler`` per call and direction keeps the filter state
(libsoxr, high quality) across chunks, so audio resampled 20 ms at a time is
the same as audio resampled in one piece, with no clicks at chunk edges. The
filter delay is absorbed at the start and returned by ``flush``; over a whole
stream the output has exactly ``round(inputs × out_rate / in_rate)`` samples.
"""

from __future__ import annotations

import numpy as np
import soxr

SUPPORTED_RATES = frozenset({8000, 16000, 24000, 48000})


class StreamingResampler:
    __slots__ = (
        "_carry",
        "_flushed",
        "_stream",
        "in_rate",
        "out_rate",
        "samples_in",
        "samples_out",
    )

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate not in SUPPORTED_RATES or out_rate not in SUPPORTED_RATES:
            raise ValueError(f"rates must be among {sorted(SUPPORTED_RATES)}")
        if 8000 not in (in_rate, out_rate) and in_rate != out_rate:
            raise ValueError("one side of the conversion must be 8 kHz")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        self._carry = b""  # an odd trailing byte waiting for its other half
        self._flushed = False
        self.samples_in = 0
        self.samples_out = 0

    @property
    def passthrough(self) -> bool:
        return self.in_rate == self.out_rate

    def process(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Resample the next chunk (any length, odd byte counts included)."""
        if self._flushed:
            raise RuntimeError("the resampler was flushed; create a new one")
        data = self._carry + bytes(chunk) if self._carry else bytes(chunk)
        whole = len(data) - (len(data) % 2)
        self._carry = data[whole:]
        if whole == 0:
            return b""
        samples = np.frombuffer(data, dtype="<i2", count=whole // 2)
        self.samples_in += samples.size
        if self.passthrough:
            self.samples_out += samples.size
            return data[:whole]
        out = self._stream.resample_chunk(samples, last=False)
        self.samples_out += out.size
        return out.astype("<i2", copy=False).tobytes()

    def flush(self) -> bytes:
        """The tail the filter still holds; after this the stream is complete."""
        if self._flushed:
            return b""
        self._flushed = True
        if self.passthrough:
            return b""
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        expected = round(self.samples_in * self.out_rate / self.in_rate)
        missing = expected - (self.samples_out + out.size)
        if missing > 0:  # never observed with libsoxr; keeps the length contract exact
            out = np.concatenate([out, np.zeros(missing, dtype=np.int16)])
        elif missing < 0:
            out = out[: out.size + missing]
        self.samples_out += out.size
        return out.astype("<i2", copy=False).tobytes()
