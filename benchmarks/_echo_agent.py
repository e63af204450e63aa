"""The benchmark echo agent: a small WebSocket server that sends every media frame back.

It speaks trunkline's Inkbox agent protocol as an agent in audio mode: the
upgrade response says ``X-Use-Inkbox-Speech-To-Text: false`` and
``X-Use-Inkbox-Text-To-Speech: false``, and every ``media`` frame received is
answered with ``{"event":"media","media":{"payload":...}}`` carrying the same
audio. Other events (``start``, ``mark``, ``stop``...) get no answer; binary
frames come back as they are.

A general-purpose WebSocket server and a JSON round trip per frame made the
agent the load generators' bottleneck from a few hundred calls, so this is
an ``asyncio.Protocol`` over :class:`EchoConnection`, a sans-I/O server side
of RFC 6455 that handles what a peer must (the opening handshake, masked
client frames, fragmented messages, ping, close) and nothing more:

- the media payload is found by its key, not by parsing the JSON;
- of a numbered μ-law frame (``benchmarks._frames``) only the first 36
  base64 characters are decoded and re-encoded: the 27 bytes that hold the
  carrier's stamp, the tag and the agent's stamp, written on the way out;
- every frame complete in one read is answered, and the answers leave in one
  write; when the peer reads slowly (the transport's buffer is full) the agent
  stops reading, so nothing piles up.
"""

from __future__ import annotations

import array
import asyncio
import base64
import binascii
import hashlib
import signal
import struct
import time
from typing import Any, cast

from benchmarks._frames import LedgerBook

_apply_mask: Any
try:
    from websockets.speedups import apply_mask as _apply_mask  # C, ships with websockets
except ImportError:  # pragma: no cover - websockets without its extension
    _apply_mask = None

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 1 << 20
MAX_HANDSHAKE = 16 * 1024
PAYLOAD_KEY = b'"payload":"'
REPLY_HEAD = b'{"event":"media","media":{"payload":"'
REPLY_TAIL = b'"}}'
TAG_CHARS = 36  # base64 of payload bytes 0–27: both stamps and the leg and number
STAMP = struct.Struct("!q")
CARRIER_STAMP_AT, AGENT_STAMP_AT = 0, 8
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def apply_mask(data: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3 masking (its own inverse)."""
    if _apply_mask is not None:
        return bytes(_apply_mask(data, key))
    length = len(data)
    repeated = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked frame, as a server sends it."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")
    return head + payload


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class EchoStats:
    """What the agent saw, over all its connections.

    ``samples``: (arrival s, carrier → agent ms) pairs of numbered frames;
    ``arrivals``: arrival times (s) of unnumbered (PCM) frames; ``book``: the
    numbered frames' numbers per leg; ``frames``: every media frame echoed.
    """

    def __init__(self, numbered: bool) -> None:
        self.numbered = numbered
        self.samples: array.array[float] = array.array("d")
        self.arrivals: array.array[float] = array.array("d")
        self.book = LedgerBook()
        self.frames = 0

    def echo(self, message: bytes) -> bytes | None:
        """The reply to one text message: a ``media`` frame with the same audio, or None."""
        at = message.rfind(PAYLOAD_KEY)
        if at < 0 or b'"media"' not in message[:40]:
            return None
        begin = at + len(PAYLOAD_KEY)
        end = message.find(b'"', begin)
        if end < 0:
            return None
        encoded = message[begin:end]
        self.frames += 1
        if not self.numbered:
            self.arrivals.append(time.monotonic())
        elif len(encoded) > TAG_CHARS:
            try:
                head = bytearray(base64.b64decode(encoded[:TAG_CHARS], validate=True))
            except binascii.Error:
                return REPLY_HEAD + encoded + REPLY_TAIL
            now = time.monotonic_ns()
            if self.book.mark_payload(
                memoryview(head)
            ):  # not a concealment frame: timed and stamped
                sent = STAMP.unpack_from(head, CARRIER_STAMP_AT)[0]
                self.samples.append(now / 1e9)
                self.samples.append((now - sent) / 1e6)
                STAMP.pack_into(head, AGENT_STAMP_AT, now)
                encoded = base64.b64encode(head) + encoded[TAG_CHARS:]
        return REPLY_HEAD + encoded + REPLY_TAIL


class EchoConnection:
    """The server side of one WebSocket connection, sans I/O: bytes in, bytes to send out."""

    def __init__(self, stats: EchoStats, headers: dict[str, str] | None = None) -> None:
        self.stats = stats
        self.extra_headers = headers if headers is not None else {
            "X-Use-Inkbox-Speech-To-Text": "false",
            "X-Use-Inkbox-Text-To-Speech": "false",
        }  # fmt: skip
        self.open = False
        self.closing = False  # a close frame was sent: the transport closes after writing
        self._buffer = b""
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0

    def receive(self, data: bytes) -> bytes:
        """Everything to send in answer to ``data`` (may be empty)."""
        if self.closing:
            return b""
        self._buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        if not self.open and not self._handshake(out):
            return b"".join(out)
        buffer, offset, size = self._buffer, 0, len(self._buffer)
        while not self.closing and size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length = second & 0x7F
            at = offset + 2
            if length == 126:
                if size - at < 2:
                    break
                length = int.from_bytes(buffer[at : at + 2], "big")
                at += 2
            elif length == 127:
                if size - at < 8:
                    break
                length = int.from_bytes(buffer[at : at + 8], "big")
                at += 8
            if not second & 0x80 or first & 0x70:
                self._fail(out, 1002, "client frames are masked, without reserved bits")
                break
            if length > MAX_MESSAGE:
                self._fail(out, 1009, "message too big")
                break
            if size - at < 4 + length:
                break
            payload = apply_mask(buffer[at + 4 : at + 4 + length], buffer[at : at + 4])
            offset = at + 4 + length
            self._frame(first & 0x80 != 0, first & 0x0F, payload, out)
        self._buffer = buffer[offset:]
        return b"".join(out)

    def _handshake(self, out: list[bytes]) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HANDSHAKE:
                self._refuse(out)
            return False
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        self._buffer = self._buffer[end + 4 :]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key", "")
        if (
            not lines[0].startswith("GET ")
            or headers.get("upgrade", "").lower() != "websocket"
            or "upgrade" not in headers.get("connection", "").lower()
            or headers.get("sec-websocket-version") != "13"
            or not key
        ):
            self._refuse(out)
            return False
        response = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(key)}",
            *(f"{name}: {value}" for name, value in self.extra_headers.items()),
        ]
        out.append(("\r\n".join(response) + "\r\n\r\n").encode())
        self.open = True
        return True

    def _refuse(self, out: list[bytes]) -> None:
        out.append(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.closing = True

    def _fail(self, out: list[bytes], code: int, reason: str) -> None:
        out.append(server_frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()))
        self.closing = True

    def _frame(self, fin: bool, opcode: int, payload: bytes, out: list[bytes]) -> None:
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                self._fail(out, 1002, "control frames are short and unfragmented")
            elif opcode == OP_CLOSE:
                out.append(server_frame(OP_CLOSE, payload[:2]))  # echo the code (RFC 6455 §5.5.1)
                self.closing = True
            elif opcode == OP_PING:
                out.append(server_frame(OP_PONG, payload))
            elif opcode != OP_PONG:
                self._fail(out, 1002, "unknown opcode")
            return
        if opcode == OP_CONTINUATION:
            if not self._fragments:
                self._fail(out, 1002, "continuation without a message")
                return
            self._fragments.append(payload)
            if sum(len(part) for part in self._fragments) > MAX_MESSAGE:
                self._fail(out, 1009, "message too big")
                return
            if not fin:
                return
            opcode, payload = self._fragment_opcode, b"".join(self._fragments)
            self._fragments = []
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments:
                self._fail(out, 1002, "a new message inside a fragmented one")
                return
            if not fin:
                self._fragment_opcode, self._fragments = opcode, [payload]
                return
        else:
            self._fail(out, 1002, "unknown opcode")
            return
        if opcode == OP_BINARY:
            out.append(server_frame(OP_BINARY, payload))
            return
        reply = self.stats.echo(payload)
        if reply is not None:
            out.append(server_frame(OP_TEXT, reply))


class EchoProtocol(asyncio.Protocol):
    """:class:`EchoConnection` on an asyncio transport: one write per read, reading paused
    while the transport's buffer is full."""

    def __init__(self, stats: EchoStats) -> None:
        self.connection = EchoConnection(stats)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reply = self.connection.receive(data)
        if self.transport is None:
            return
        if reply:
            self.transport.write(reply)
        if self.connection.closing:
            self.transport.close()

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve_echo(port: int, numbered: bool, host: str = "127.0.0.1") -> EchoStats:
    """Echo on ``host:port`` until SIGTERM; return what was seen."""
    loop = asyncio.get_running_loop()
    stats = EchoStats(numbered)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server: Any = await loop.create_server(lambda: EchoProtocol(stats), host, port, backlog=1024)
    try:
        await stop.wait()
    finally:
        server.close()
    return stats
