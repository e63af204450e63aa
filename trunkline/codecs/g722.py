"""G.722 (ITU-T G.722, 64 kbit/s sub-band ADPCM): 16 kHz wideband audio in 8 bits per 2 samples.

The codec itself is the ``G722`` package (a C implementation); this wraps it
with trunkline's conventions: PCM16 little-endian mono at 16 kHz in and out,
one stateful encoder or decoder per call and direction (ADPCM predicts from
what came before, so a stream must go through one instance in order).

On the wire, 20 ms of G.722 is 160 bytes carrying 320 samples. Its RTP clock
rate is nevertheless 8000 (RFC 3551 §4.5.2 keeps the value G.722 was first
registered with), so its RTP timestamps advance by 160 per 20 ms packet, as
G.711's do.
"""

from __future__ import annotations

import numpy as np
from G722 import G722 as _G722Codec

SAMPLE_RATE = 16_000
BIT_RATE = 64_000
FRAME_BYTES = 160  # 20 ms on the wire
FRAME_SAMPLES = 320  # 20 ms at 16 kHz
RTP_CLOCK_RATE = 8000


class G722Decoder:
    """G.722 payloads → PCM16 at 16 kHz (two samples per payload byte)."""

    __slots__ = ("_codec",)

    def __init__(self) -> None:
        self._codec = _G722Codec(SAMPLE_RATE, BIT_RATE)

    def decode(self, payload: bytes | bytearray | memoryview) -> bytes:
        samples = self._codec.decode(bytes(payload))
        return bytes(samples.tobytes())


class G722Encoder:
    """PCM16 at 16 kHz → G.722 payloads (one byte per two samples; an odd sample waits)."""

    __slots__ = ("_carry", "_codec")

    def __init__(self) -> None:
        self._codec = _G722Codec(SAMPLE_RATE, BIT_RATE)
        self._carry = b""

    def encode(self, pcm: bytes | bytearray | memoryview) -> bytes:
        data = self._carry + bytes(pcm) if self._carry else bytes(pcm)
        whole = len(data) - len(data) % 4  # pairs of 16-bit samples
        self._carry = data[whole:]
        if whole == 0:
            return b""
        samples = np.frombuffer(data, dtype="<i2", count=whole // 2)
        return bytes(self._codec.encode(samples))
