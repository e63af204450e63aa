"""ITU-T G.711 μ-law and A-law ⇄ 16-bit linear PCM, by table lookup.

The tables are computed at import from the G.711 segment algorithm as the
reference implementation states it (μ-law on the top 14 bits of a sample,
A-law on the top 13), so results are bit-exact with ``audioop``. PCM is
little-endian signed 16-bit, as on the wire of every agent format.

Each direction has a ``bytes`` form and an ``*_into`` form that writes into a
caller-owned numpy buffer, for the per-frame hot path. On little-endian hosts
decoding is done by ``audioop`` — the C implementation the tables are verified
against, faster than a numpy lookup at every size — and so is encoding of
buffers up to ``AUDIOOP_MAX_BYTES`` (a frame); larger buffers are encoded by
table lookup, several times faster than ``audioop``. The tables serve every
other host.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import numpy.typing as npt

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # stdlib audioop before 3.13
    import audioop

_NATIVE_LITTLE = sys.byteorder == "little"
AUDIOOP_MAX_BYTES = 2048  # above this, numpy table lookups win

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])

Pcm = npt.NDArray[np.int16]
Codes = npt.NDArray[np.uint8]


def _all_samples() -> npt.NDArray[np.int64]:
    """Every int16 value, indexed by its unsigned 16-bit pattern."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)


def _ulaw_encode_table() -> Codes:
    value = _all_samples() >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, value, side="left")
    code = np.where(
        segment >= 8,
        0x7F,
        (np.minimum(segment, 7) << 4) | ((value >> (np.minimum(segment, 7) + 1)) & 0x0F),
    )
    return (code ^ mask).astype(np.uint8)


def _ulaw_decode_table() -> Pcm:
    code = ~np.arange(256, dtype=np.int64) & 0xFF
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS).astype(np.int16)


def _alaw_encode_table() -> Codes:
    value = _all_samples() >> 3
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, value, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | ((value >> shift) & 0x0F))
    return (code ^ mask).astype(np.uint8)


def _alaw_decode_table() -> Pcm:
    code = np.arange(256, dtype=np.int64) ^ 0x55
    mantissa = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    magnitude = np.where(
        segment == 0,
        mantissa + 8,
        (mantissa + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_ENCODE: Codes = _ulaw_encode_table()
ULAW_DECODE: Pcm = _ulaw_decode_table()
ALAW_ENCODE: Codes = _alaw_encode_table()
ALAW_DECODE: Pcm = _alaw_decode_table()
# Low and high bytes of each decoded sample, for decoding with two ``bytes.translate``
# calls and two strided copies: no numpy call overhead on a 160-byte frame.
_ULAW_LOW = ULAW_DECODE.view(np.uint16).astype(np.uint8).tobytes()
_ULAW_HIGH = (ULAW_DECODE.view(np.uint16) >> 8).astype(np.uint8).tobytes()
_ALAW_LOW = ALAW_DECODE.view(np.uint16).astype(np.uint8).tobytes()
_ALAW_HIGH = (ALAW_DECODE.view(np.uint16) >> 8).astype(np.uint8).tobytes()
ULAW_TO_ALAW: bytes = ALAW_ENCODE[ULAW_DECODE.view(np.uint16)].tobytes()
ALAW_TO_ULAW: bytes = ULAW_ENCODE[ALAW_DECODE.view(np.uint16)].tobytes()


def _samples(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.uint16]:
    if len(pcm) % 2:
        raise ValueError("PCM16 data must have an even number of bytes")
    return np.frombuffer(pcm, dtype="<u2")


def _decode(codes: bytes | bytearray | memoryview, low: bytes, high: bytes) -> bytes:
    data = bytes(codes)
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(low)
    out[1::2] = data.translate(high)
    return bytes(out)


def ulaw_to_pcm16(codes: bytes | bytearray | memoryview) -> bytes:
    if _NATIVE_LITTLE:  # audioop decodes faster than the tables at every size
        return audioop.ulaw2lin(codes, 2)
    return _decode(codes, _ULAW_LOW, _ULAW_HIGH)


def alaw_to_pcm16(codes: bytes | bytearray | memoryview) -> bytes:
    if _NATIVE_LITTLE:  # audioop decodes faster than the tables at every size
        return audioop.alaw2lin(codes, 2)
    return _decode(codes, _ALAW_LOW, _ALAW_HIGH)


def pcm16_to_ulaw(pcm: bytes | bytearray | memoryview) -> bytes:
    if _NATIVE_LITTLE and len(pcm) <= AUDIOOP_MAX_BYTES:
        if len(pcm) % 2:
            raise ValueError("PCM16 data must have an even number of bytes")
        return audioop.lin2ulaw(pcm, 2)
    return ULAW_ENCODE.take(_samples(pcm)).tobytes()


def pcm16_to_alaw(pcm: bytes | bytearray | memoryview) -> bytes:
    if _NATIVE_LITTLE and len(pcm) <= AUDIOOP_MAX_BYTES:
        if len(pcm) % 2:
            raise ValueError("PCM16 data must have an even number of bytes")
        return audioop.lin2alaw(pcm, 2)
    return ALAW_ENCODE.take(_samples(pcm)).tobytes()


def table_decode(codes: bytes | bytearray | memoryview, law: str) -> bytes:
    """Decode by table alone (what every host without ``audioop`` fast paths uses)."""
    if law == "ulaw":
        return _decode(codes, _ULAW_LOW, _ULAW_HIGH)
    return _decode(codes, _ALAW_LOW, _ALAW_HIGH)


def ulaw_to_alaw(codes: bytes | bytearray | memoryview) -> bytes:
    return bytes(codes).translate(ULAW_TO_ALAW)


def alaw_to_ulaw(codes: bytes | bytearray | memoryview) -> bytes:
    return bytes(codes).translate(ALAW_TO_ULAW)


def ulaw_to_pcm16_into(codes: Codes, out: Pcm) -> None:
    """Decode into a preallocated int16 array of the same length."""
    np.take(ULAW_DECODE, codes, out=out)


def alaw_to_pcm16_into(codes: Codes, out: Pcm) -> None:
    np.take(ALAW_DECODE, codes, out=out)


def pcm16_to_ulaw_into(pcm: Pcm, out: Codes) -> None:
    """Encode an int16 array into a preallocated uint8 array of the same length."""
    np.take(ULAW_ENCODE, pcm.view(np.uint16), out=out)


def pcm16_to_alaw_into(pcm: Pcm, out: Codes) -> None:
    np.take(ALAW_ENCODE, pcm.view(np.uint16), out=out)
