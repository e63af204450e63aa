"""The per-frame media work: the C extension when it is built, its pure-Python twin otherwise.

``pip install`` compiles ``trunkline/_speedups.c`` where a compiler is found
and goes on without it where not; ``TRUNKLINE_NO_SPEEDUPS=1`` runs the pure
Python even when it is built (the test suite runs both ways). The choice is
made once, at import; ``ACCELERATED`` says which, and the start-up block logs
it. ``MaskKeys`` hands out WebSocket mask keys from a pooled ``os.urandom``
buffer (one system call per 1,024 frames, not one per frame).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from types import ModuleType

from trunkline import _speedups_py

DISABLE_VARIABLE = "TRUNKLINE_NO_SPEEDUPS"


def _choose() -> tuple[ModuleType, str | None]:
    """The module to use, and why the C one is not used (None: it is)."""
    if os.environ.get(DISABLE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return _speedups_py, f"{DISABLE_VARIABLE} is set"
    try:
        from trunkline import _speedups  # type: ignore[attr-defined]
    except ImportError as exc:
        return _speedups_py, f"the C extension is not built ({exc})"
    return _speedups, None


_module, FALLBACK_REASON = _choose()
ACCELERATED = FALLBACK_REASON is None
IMPLEMENTATION = "C extension" if ACCELERATED else "pure Python"

Buffer = bytes | bytearray | memoryview

parse_rtp: Callable[[Buffer], tuple[int, bool, int, int, int, memoryview]] = _module.parse_rtp
build_rtp: Callable[[Buffer, int, int, int, int, bool], bytes] = _module.build_rtp
encode_media_frame: Callable[[bytes, Buffer, bytes], bytes] = _module.encode_media_frame
decode_media_payload: Callable[[str, int], bytes | None] = _module.decode_media_payload
ws_client_frame: Callable[[int, Buffer, bytes], bytes] = _module.ws_client_frame
ws_server_frames: Callable[[Buffer, int, int], tuple[list[str | bytes], int]] = (
    _module.ws_server_frames
)
# Polyphase FIR resampling of PCM16 (``codecs.resample``): one call per chunk and direction.
fir_interpolate: Callable[[Buffer, int, bytearray, Buffer], bytes] = _module.fir_interpolate
fir_decimate: Callable[[Buffer, int, bytearray, int, Buffer], bytes] = _module.fir_decimate
# Shared media sockets (Linux's recvmmsg/sendmmsg in C; a system call per datagram elsewhere).
recv_batch: Callable[[socket.socket, int], list[tuple[bytes, bytes]]] = getattr(
    _module, "recv_batch", _speedups_py.recv_batch
)
send_batch: Callable[[socket.socket, list[tuple[bytes, bytes]]], int] = getattr(
    _module, "send_batch", _speedups_py.send_batch
)
# The caller's jitter buffer's C core (``gateway/rtp/jitter.py`` holds its pure-Python twin
# and chooses by this: None runs the twin).
JitterCore: type | None = getattr(_module, "JitterCore", None)
# An RTP session's inbound checks in C (``gateway/rtp/reception.py`` holds the twin).
RtpReceiver: type | None = getattr(_module, "RtpReceiver", None)
# Its outbound packetiser in C (``gateway/rtp/sending.py`` holds the twin).
RtpSender: type | None = getattr(_module, "RtpSender", None)
address_key = _speedups_py.address_key
key_address = _speedups_py.key_address


def describe() -> str:
    """One line for the start-up block: which implementation runs the media path, and why."""
    if ACCELERATED:
        return "media speedups: C extension"
    return f"media speedups: pure Python ({FALLBACK_REASON})"


MASK_POOL_BYTES = 4096


class MaskKeys:
    """4-byte WebSocket mask keys cut from a pooled ``os.urandom`` buffer, refilled when used up.

    The keys stay unpredictable (RFC 6455 §5.3: from the kernel's CSPRNG); what
    the pool saves is the system call per frame.
    """

    __slots__ = ("_offset", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0

    def next(self) -> bytes:
        offset = self._offset
        if offset >= len(self._pool):
            self._pool = os.urandom(MASK_POOL_BYTES)
            offset = 0
        self._offset = offset + 4
        return self._pool[offset : offset + 4]
