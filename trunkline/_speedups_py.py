"""The per-frame media work in pure Python: the twin of the C module ``trunkline._speedups``.

Same functions, arguments, results and errors (``tests/test_speedups.py`` holds
the two to it); ``trunkline.speedups`` picks one. ``decode_media_payload`` is
the one function whose results may differ, and only one way: the C version
declines (returns None) frames whose shape it does not read itself, and the
caller then runs its full parser, so what a caller ends up with is the same.
Masking uses the function websockets masks its own frames with. The resampling
filters (``fir_interpolate``, ``fir_decimate``) are numpy here; C adds each sum
in the same order without fused multiply-adds, so the samples match, and the
tests allow one step of rounding where a build adds them otherwise.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import socket
import struct

import numpy as np
from websockets.frames import apply_mask  # websockets' own (its C speedup when built)

RTP_HEADER_BYTES = 12
_RTP_HEADER = struct.Struct("!BBHII")

Buffer = bytes | bytearray | memoryview


def parse_rtp(data: Buffer) -> tuple[int, bool, int, int, int, memoryview]:
    """(payload type, marker, sequence, timestamp, SSRC, payload view); ValueError if malformed."""
    view = memoryview(data)
    if len(view) < RTP_HEADER_BYTES:
        raise ValueError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _RTP_HEADER.unpack_from(view)
    if first >> 6 != 2:
        raise ValueError("not RTP version 2")
    offset = RTP_HEADER_BYTES + 4 * (first & 0x0F)
    end = len(view)
    if first & 0x10:  # header extension
        if end < offset + 4:
            raise ValueError("truncated header extension")
        offset += 4 + 4 * ((view[offset + 2] << 8) | view[offset + 3])
    if first & 0x20:  # padding
        padding = view[end - 1]
        if padding == 0 or end - padding < offset:
            raise ValueError("bad padding length")
        end -= padding
    if offset > end:
        raise ValueError("header longer than the packet")
    return second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, view[offset:end]


def build_rtp(
    payload: Buffer,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    marker: bool,
) -> bytes:
    """A new RTP packet: the header (RFC 3550 §5.1, version 2, no CSRCs) and ``payload``."""
    header = _RTP_HEADER.pack(
        0x80,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )
    return header + bytes(payload)


def encode_media_frame(prefix: Buffer, payload: Buffer, suffix: Buffer) -> bytes:
    """``prefix``, the payload in base64, ``suffix``: a media frame from its JSON template."""
    return b"".join((prefix, binascii.b2a_base64(payload, newline=False), suffix))


def decode_media_payload(text: str, max_payload_chars: int) -> bytes | None:
    """The decoded payload of a well-formed ``media`` frame; None for anything else.

    A media frame is a JSON object whose ``event`` is ``"media"`` and whose
    ``media`` object holds a base64 string ``payload`` of at most
    ``max_payload_chars`` characters.
    """
    if '"media"' not in text:
        return None  # not a media frame (marks, clear, text…): skip the JSON parse
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(frame, dict) or frame.get("event") != "media":
        return None
    media = frame.get("media")
    payload = media.get("payload") if isinstance(media, dict) else None
    if not isinstance(payload, str) or len(payload) > max_payload_chars:
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def ws_client_frame(opcode: int, payload: Buffer, mask_key: Buffer) -> bytes:
    """One final, masked client frame (RFC 6455 §5.2) carrying ``payload``."""
    if not 0 <= opcode <= 15:
        raise ValueError("opcode must be 0 to 15")
    if len(mask_key) != 4:
        raise ValueError("the mask key must be 4 bytes")
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size <= 0xFFFF:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return b"".join((head, mask_key, apply_mask(payload, bytes(mask_key))))


def ws_server_frames(data: Buffer, start: int, max_size: int) -> tuple[list[str | bytes], int]:
    """The complete, final, unmasked text (as ``str``) and binary (as ``bytes``) frames of a
    server from ``data[start:]`` on, each of at most ``max_size`` payload bytes, and where
    the first frame of any other kind begins (RFC 6455 §5.2).

    Incomplete frames, control frames, fragments, masked frames, reserved bits or
    opcodes, frames over ``max_size`` and text that is not UTF-8 stop the split: the
    caller reads the frame at the returned offset itself.
    """
    if max_size < 0:
        raise ValueError("max_size must not be negative")
    end = len(data)
    if not 0 <= start <= end:
        raise ValueError("start is outside the data")
    frames: list[str | bytes] = []
    offset = start
    while end - offset >= 2:
        first = data[offset]
        if first != 0x81 and first != 0x82:
            break  # not a final text or binary frame, or reserved bits set
        length = data[offset + 1]
        head = 2
        if length > 125:
            if length == 126:
                if end - offset < 4:
                    break
                length = (data[offset + 2] << 8) | data[offset + 3]
                head = 4
            elif length == 127:
                if end - offset < 10:
                    break
                length = int.from_bytes(data[offset + 2 : offset + 10], "big")
                head = 10
            else:
                break  # masked: left to the caller
        payload_start = offset + head
        stop = payload_start + length
        if length > max_size or stop > end:
            break  # too large, or not all here yet
        if first == 0x81:
            try:
                frames.append(str(data[payload_start:stop], "utf-8"))
            except UnicodeDecodeError:
                break  # not UTF-8: the caller fails the connection
        else:
            frames.append(bytes(data[payload_start:stop]))
        offset = stop
    return frames, offset


BATCH_MAX = 64
DATAGRAM_MAX = 2048
_NO_ROOM = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)


def address_key(host: str, port: int) -> bytes:
    """The key a source or destination is named by: packed address, then the port big-endian
    (6 bytes for IPv4, 18 for IPv6); ValueError for what is not an IP address and port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        packed = socket.inet_pton(family, host.split("%", 1)[0])
    except OSError:
        raise ValueError(f"not an IP address: {host[:60]!r}") from None
    if not 0 <= port < 65536:
        raise ValueError(f"not a port: {port}")
    return packed + port.to_bytes(2, "big")


def key_address(key: bytes) -> tuple[str, int]:
    """The (host, port) an address key names."""
    family = socket.AF_INET if len(key) == 6 else socket.AF_INET6
    return socket.inet_ntop(family, key[:-2]), int.from_bytes(key[-2:], "big")


def recv_batch(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """[(datagram, source key), ...] waiting now, at most ``count`` (1..64), without blocking;
    a datagram over 2,048 bytes comes cut to 2,049 (the caller drops it)."""
    if not 1 <= count <= BATCH_MAX:
        raise ValueError("count must be 1 to 64")
    batch: list[tuple[bytes, bytes]] = []
    for _ in range(count):
        try:
            data, source = sock.recvfrom(DATAGRAM_MAX + 1, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            if batch:
                break  # what was read is returned; the error comes again on the next call
            raise
        batch.append((data, address_key(source[0], source[1])))
    return batch


def send_batch(sock: socket.socket, items: list[tuple[bytes, bytes]]) -> int:
    """Send each (datagram, destination key) without blocking; how many were sent. It stops at
    the first the kernel has no room for and skips one that cannot be sent (a key not of the
    socket's family, an unreachable host)."""
    if not isinstance(items, list):
        raise TypeError("send_batch(sock, list of (datagram, key))")
    size = 6 if sock.family == socket.AF_INET else 18
    sent = 0
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], bytes)):
            raise TypeError("send_batch items are (bytes, key) pairs")
        data, key = item
        if not isinstance(key, bytes) or len(key) != size:
            continue
        try:
            sock.sendto(data, socket.MSG_DONTWAIT, key_address(key))
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                return sent
            continue
        sent += 1
    return sent


# -- polyphase FIR resampling of PCM16 (``codecs.resample``) -------------------------------


def _extend_history(history: bytearray, kept: int, pcm: Buffer) -> tuple[np.ndarray, np.ndarray]:
    """The history as a writable view, and the history followed by the new samples."""
    if memoryview(history).readonly:
        raise BufferError("Object is not writable.")  # as the buffer protocol says it in C
    if len(history) != kept * 8:
        raise ValueError("the history does not match the filter")
    if len(pcm) % 2:
        raise ValueError("PCM16 needs whole samples (an even byte count)")
    held = np.frombuffer(history, dtype=np.float64)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return held, np.concatenate((held, samples))


def _filter(taps: Buffer, ratio: int, *, phases: bool) -> np.ndarray:
    """The taps as doubles (in ``ratio`` equal parts when ``phases``: one per output phase)."""
    if ratio < 1:
        raise ValueError("the ratio must be at least 1")
    if not len(taps) or len(taps) % (8 * (ratio if phases else 1)):
        raise ValueError(
            "the filter is not a whole number of " + ("phases of doubles" if phases else "doubles")
        )
    return np.frombuffer(taps, dtype=np.float64)


def _to_pcm16(out: np.ndarray) -> bytes:
    np.rint(out, out=out)  # half to even, as C's rint
    np.clip(out, -32768, 32767, out=out)
    return out.astype("<i2").tobytes()


def fir_interpolate(phases: Buffer, ratio: int, history: bytearray, pcm: Buffer) -> bytes:
    """PCM16 at ``ratio`` times the rate: output ``ratio·i + p`` is phase ``p``'s taps
    convolved with the input ending at sample ``i``; ``history`` (the last taps − 1
    inputs, doubles) is updated."""
    taps = _filter(phases, ratio, phases=True).reshape(ratio, -1)
    held, extended = _extend_history(history, taps.shape[1] - 1, pcm)
    count = extended.size - held.size
    out = np.empty(count * ratio)
    for phase in range(ratio if count else 0):  # (numpy would swap a shorter input)
        out[phase::ratio] = np.convolve(extended, taps[phase], "valid")
    held[:] = extended[count:]
    return _to_pcm16(out)


def fir_decimate(
    reversed_taps: Buffer, ratio: int, history: bytearray, first: int, pcm: Buffer
) -> bytes:
    """PCM16 at 1/``ratio`` the rate: output ``j`` is the taps over the window of history
    and input starting at ``first + ratio·j``, while a window ends inside this input;
    ``history`` is updated."""
    if first < 0:
        raise ValueError("the first output's offset must not be negative")
    taps = _filter(reversed_taps, ratio, phases=False)
    held, extended = _extend_history(history, taps.size - 1, pcm)
    count = extended.size - held.size
    outputs = (count - 1 - first) // ratio + 1 if first < count else 0
    if outputs:
        span = extended[first : first + (outputs - 1) * ratio + taps.size]
        stride = span.strides[0]
        windows = np.lib.stride_tricks.as_strided(
            span, (outputs, taps.size), (stride * ratio, stride), writeable=False
        )
        out = windows @ taps
    else:
        out = np.zeros(0)
    held[:] = extended[count:]
    return _to_pcm16(out)
