"""What the agent (a WebSocket server) sends on an open connection, read sans I/O (RFC 6455).

``ServerFrameReader.receive(data)`` takes bytes as they arrive and returns what
they complete, in order: each text message as ``str``, each binary message as
``bytes``, ``Ping`` and ``Pong`` for those control frames, ``Close`` (the
agent's code and reason, websockets' own type) for a close frame — or, last,
``Failed`` with the code the connection is to be failed with (§7.1.7). After
a ``Close`` or ``Failed`` nothing more is read (§1.4: the rest is discarded).

Failures: 1002 for a protocol error — a masked frame (a server never masks,
§5.1), reserved bits (no extension is negotiated) or a reserved opcode, a
control frame that is fragmented or over 125 bytes (§5.5), a continuation
without a message to continue or a new message in the middle of one (§5.4),
a malformed close payload (§5.5.1, §7.4); 1007 for text (a message, or a
close reason) that is not UTF-8 (§8.1); 1009 for a message over
``max_message_bytes``. The limit is the one websockets' parser applies: a
frame's declared length is checked against what is left of its message's
budget before its payload is buffered, so the buffer never holds more than a
message plus one read.

Control frames may come between the fragments of a message (§5.4) and are
returned as they come. A close frame in the middle of a message closes the
connection; the unfinished message is dropped.

The usual frame — final, unfragmented, unmasked text or binary — is split
out of the received bytes by ``speedups.ws_server_frames`` (the C extension or
its pure-Python twin), as many at a time as are complete; every other frame
is read here, one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from websockets.exceptions import ProtocolError
from websockets.frames import Close

from trunkline.speedups import ws_server_frames

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})
MAX_CONTROL_PAYLOAD_BYTES = 125
PROTOCOL_ERROR, INVALID_DATA, MESSAGE_TOO_BIG = 1002, 1007, 1009


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Failed:
    """The connection is to be failed with this close code (RFC 6455 §7.1.7)."""

    code: int
    reason: str


ServerEvent = str | bytes | Ping | Pong | Close | Failed


class _Failure(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ServerFrameReader:
    """Reads one open connection's server frames; see the module's docstring."""

    __slots__ = ("_buffer", "_done", "_fragments", "_max", "_message_opcode", "_message_size")

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._buffer = bytearray()  # the start of a frame not all here yet
        self._fragments: list[bytes] | None = None  # a fragmented message, until its last frame
        self._message_opcode = OP_TEXT
        self._message_size = 0
        self._done = False  # a close frame came, or the connection is to be failed

    @property
    def done(self) -> bool:
        """A ``Close`` or ``Failed`` was returned: the reader discards what comes after."""
        return self._done

    @property
    def buffered_bytes(self) -> int:
        """Bytes of a frame not all received yet."""
        return len(self._buffer)

    def receive(self, data: bytes | bytearray) -> list[ServerEvent]:
        """What ``data`` completes (with what came before it), in order."""
        if self._done:
            return []
        buffer = self._buffer
        if buffer:
            buffer += data
            data = buffer
        offset = 0
        if self._fragments is None:
            events, offset = ws_server_frames(data, 0, self._max)
            if offset == len(data):  # the usual case: whole frames, nothing else
                if buffer:
                    buffer.clear()
                return events  # type: ignore[return-value]  # list is invariant: str | bytes
        else:
            events = []
        received: list[ServerEvent] = events  # type: ignore[assignment]
        end = len(data)
        while offset < end:
            try:
                stop = self._frame(data, offset, received)
            except _Failure as failure:
                received.append(Failed(failure.code, failure.reason))
                self._done = True
            if self._done:
                self._buffer = bytearray()
                return received
            if stop < 0:
                break  # the frame at offset is not all here yet
            offset = stop
            if self._fragments is None and offset < end:
                more, offset = ws_server_frames(data, offset, self._max)
                received.extend(more)
        if data is buffer:
            del buffer[:offset]
        else:
            buffer += memoryview(data)[offset:]
        return received

    def _frame(self, data: bytes | bytearray, offset: int, received: list[ServerEvent]) -> int:
        """Read the frame at ``offset`` into ``received``; where it ends, or -1 if incomplete."""
        available = len(data) - offset
        if available < 2:
            return -1
        first, second = data[offset], data[offset + 1]
        opcode = first & 0x0F
        if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES:
            raise _Failure(PROTOCOL_ERROR, "invalid opcode")
        if second & 0x80:
            raise _Failure(PROTOCOL_ERROR, "incorrect masking")
        length, head = second & 0x7F, 2
        if length == 126:
            if available < 4:
                return -1
            length, head = int.from_bytes(data[offset + 2 : offset + 4], "big"), 4
        elif length == 127:
            if available < 10:
                return -1
            length, head = int.from_bytes(data[offset + 2 : offset + 10], "big"), 10
        budget = self._max if self._fragments is None else self._max - self._message_size
        if length > budget:
            raise _Failure(
                MESSAGE_TOO_BIG, f"frame with {length} bytes exceeds limit of {budget} bytes"
            )
        if first & 0x70:
            raise _Failure(PROTOCOL_ERROR, "reserved bits must be 0")
        final = bool(first & 0x80)
        if opcode in CONTROL_OPCODES:
            if length > MAX_CONTROL_PAYLOAD_BYTES:
                raise _Failure(PROTOCOL_ERROR, "control frame too long")
            if not final:
                raise _Failure(PROTOCOL_ERROR, "fragmented control frame")
        stop = offset + head + length
        if stop > len(data):
            return -1
        payload = bytes(data[offset + head : stop])
        if opcode == OP_PING:
            received.append(Ping(payload))
        elif opcode == OP_PONG:
            received.append(Pong(payload))
        elif opcode == OP_CLOSE:
            received.append(self._close(payload))
            self._done = True
        else:
            self._data(opcode, final, payload, received)
        return stop

    def _data(self, opcode: int, final: bool, payload: bytes, received: list[ServerEvent]) -> None:
        """A text, binary or continuation frame: a message, or a part of one."""
        fragments = self._fragments
        if opcode == OP_CONTINUATION:
            if fragments is None:
                raise _Failure(PROTOCOL_ERROR, "unexpected continuation frame")
            fragments.append(payload)
            self._message_size += len(payload)
            if not final:
                return
            self._fragments = None
            received.append(self._message(self._message_opcode, b"".join(fragments)))
        elif fragments is not None:
            raise _Failure(PROTOCOL_ERROR, "expected a continuation frame")
        elif final:
            received.append(self._message(opcode, payload))
        else:
            self._fragments = [payload]
            self._message_opcode = opcode
            self._message_size = len(payload)

    @staticmethod
    def _message(opcode: int, payload: bytes) -> str | bytes:
        if opcode == OP_BINARY:
            return payload
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Failure(INVALID_DATA, f"{exc.reason} at position {exc.start}") from None

    @staticmethod
    def _close(payload: bytes) -> Close:
        """The close frame's code and reason (1005 and "" when it has none), checked."""
        try:
            return Close.parse(payload)
        except ProtocolError as exc:
            raise _Failure(PROTOCOL_ERROR, str(exc)) from None
        except UnicodeDecodeError as exc:
            raise _Failure(INVALID_DATA, f"{exc.reason} at position {exc.start}") from None
