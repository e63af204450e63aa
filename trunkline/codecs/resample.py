"""Streaming, low-latency sample-rate conversion of mono PCM16: 8 kHz ⇄ 16/24/48 kHz.

Every supported conversion is an integer ratio R (2, 3 or 6), so one
Kaiser-windowed sinc low-pass filter of ``TAPS_PER_PHASE × R + 1`` taps, cut off
at 4 kHz (the 8 kHz side's Nyquist), does the work in polyphase form:
upsampling computes R outputs per input from R sub-filters; downsampling
computes one output per R inputs. The filter passes 0–3.4 kHz (the telephone
band) flat and attenuates above 4.6 kHz by at least 70 dB, and delays the
signal by ``delay_ms`` = 2 ms (16 samples at 8 kHz) — where a general-purpose resampler of the same
quality (libsoxr HQ) holds back about 66 ms at 16 ⇄ 8 kHz, far too much for a
conversation.

One ``StreamingResampler`` per call and direction keeps the filter history
and the decimation phase across chunks, so a stream resampled 20 ms at a time
equals the stream resampled in one piece, chunk sizes (odd byte counts too)
never click, and over any stream the output has exactly ``inputs × out/in``
samples (downsampling: rounded up) — nothing is held back to flush.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

SUPPORTED_RATES = frozenset({8000, 16000, 24000, 48000})
TAPS_PER_PHASE = 32
KAISER_BETA = 7.0  # about 70 dB of stop-band attenuation
CUTOFF_HZ = 4000.0

Floats = npt.NDArray[np.float64]


@cache
def lowpass(ratio: int) -> Floats:
    """The prototype filter at the high rate (``ratio`` × 8 kHz), unity DC gain.

    Odd length, so its delay is a whole number of samples at both rates.
    """
    taps = TAPS_PER_PHASE * ratio + 1
    high_rate = 8000 * ratio
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = CUTOFF_HZ / high_rate  # cycles per high-rate sample
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, KAISER_BETA)
    return h / h.sum()


class StreamingResampler:
    __slots__ = (
        "_carry",
        "_filter",
        "_flushed",
        "_history",
        "_next_output",
        "_phases",
        "_reversed",
        "_position",
        "in_rate",
        "out_rate",
        "ratio",
        "samples_in",
        "samples_out",
        "upsampling",
    )

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate not in SUPPORTED_RATES or out_rate not in SUPPORTED_RATES:
            raise ValueError(f"rates must be among {sorted(SUPPORTED_RATES)}")
        if 8000 not in (in_rate, out_rate) and in_rate != out_rate:
            raise ValueError("one side of the conversion must be 8 kHz")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.upsampling = out_rate > in_rate
        self.ratio = max(in_rate, out_rate) // min(in_rate, out_rate)
        h = lowpass(self.ratio)
        if self.upsampling:
            # Sub-filter p is every R-th tap from p (gain R restores the level lost to
            # zero-stuffing); output R·i + p is sub-filter p convolved with the input at i.
            padded = np.concatenate((h, np.zeros(self.ratio - 1)))  # a whole number of phases
            self._phases = [
                np.ascontiguousarray(padded[p :: self.ratio] * self.ratio)
                for p in range(self.ratio)
            ]
            history = self._phases[0].size - 1
        else:
            self._phases = []
            history = h.size - 1
        self._filter = h
        self._reversed = h[::-1].copy()
        self._history = np.zeros(history)
        self._carry = b""  # an odd trailing byte waiting for its other half
        self._position = 0  # input samples consumed (downsampling phase)
        self._next_output = 0  # input index of the next decimated output
        self._flushed = False
        self.samples_in = 0
        self.samples_out = 0

    @property
    def passthrough(self) -> bool:
        return self.in_rate == self.out_rate

    @property
    def delay_ms(self) -> float:
        """How long the filter delays the signal (half its length at the high rate)."""
        if self.passthrough:
            return 0.0
        return TAPS_PER_PHASE * self.ratio / 2 / max(self.in_rate, self.out_rate) * 1000

    def process(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Resample the next chunk (any length, odd byte counts included)."""
        if self._flushed:
            raise RuntimeError("the resampler was flushed; create a new one")
        data = self._carry + bytes(chunk) if self._carry else bytes(chunk)
        whole = len(data) - (len(data) % 2)
        self._carry = data[whole:]
        if whole == 0:
            return b""
        self.samples_in += whole // 2
        if self.passthrough:
            self.samples_out += whole // 2
            return data[:whole]
        samples = np.frombuffer(data, dtype="<i2", count=whole // 2).astype(np.float64)
        extended = np.concatenate((self._history, samples))
        self._history = extended[extended.size - self._history.size :]
        if self.upsampling:
            out = self._upsample(extended, samples.size)
        else:
            out = self._downsample(extended, samples.size)
        self.samples_out += out.size
        np.rint(out, out=out)
        np.clip(out, -32768, 32767, out=out)
        return out.astype("<i2").tobytes()

    def _upsample(self, extended: Floats, count: int) -> Floats:
        out = np.empty(count * self.ratio)
        for phase, taps in enumerate(self._phases):
            out[phase :: self.ratio] = np.convolve(extended, taps, "valid")
        return out

    def _downsample(self, extended: Floats, count: int) -> Floats:
        start = self._position
        first = self._next_output - start  # offset in this chunk of the next output
        self._position += count
        if first >= count:
            return np.zeros(0)
        outputs = (count - 1 - first) // self.ratio + 1
        self._next_output = start + first + outputs * self.ratio
        # Window j of the extended input ends at input j; outputs fall on every R-th one.
        span = extended[first : first + (outputs - 1) * self.ratio + self._filter.size]
        stride = span.strides[0]
        windows = np.lib.stride_tricks.as_strided(
            span, (outputs, self._filter.size), (stride * self.ratio, stride), writeable=False
        )
        return windows @ self._reversed

    def flush(self) -> bytes:
        """End the stream. Nothing is held back: output already matches the input's length."""
        self._flushed = True
        return b""
