"""SIP message framing on a byte stream (RFC 3261 §18.3), sans I/O.

Over TCP and TLS messages follow one another on the connection with nothing
between them but optional CRLF keep-alives (RFC 5626 §3.5.1); each ends after
its blank line plus ``Content-Length`` bytes of body, and a stream message
without ``Content-Length`` cannot be framed. ``StreamFramer`` takes bytes as
they arrive (split or coalesced anyhow) and returns the complete messages. Its
buffer never holds more than one message: headers longer than
``max_message_bytes`` or a ``Content-Length`` that would exceed it raise
``FramingError``, after which the connection cannot be resynchronised and is
closed by its owner.
"""

from __future__ import annotations

import re

from trunkline.gateway.sip.message import MAX_MESSAGE_BYTES

# "Content-Length" or its compact form "l", at the start of a header line (§7.3.3, §20.14).
_CONTENT_LENGTH = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)")
_END_OF_HEADERS = b"\r\n\r\n"


class FramingError(ValueError):
    """The stream cannot be framed any further (oversized message, bad Content-Length)."""


class StreamFramer:
    """Splits one connection's byte stream into SIP messages."""

    __slots__ = ("_buffer", "_body_length", "_head_length", "max_message_bytes", "keep_alives")

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._head_length: int | None = None  # once the blank line of the current message is in
        self._body_length = 0
        self.keep_alives = 0  # CRLF or CRLFCRLF pings seen between messages

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The messages ``data`` completes (possibly none, possibly several)."""
        self._buffer += data
        messages: list[bytes] = []
        while True:
            message = self._next()
            if message is None:
                return messages
            messages.append(message)

    def _next(self) -> bytes | None:
        buffer = self._buffer
        if self._head_length is None:
            self._skip_keep_alives()
            end = buffer.find(_END_OF_HEADERS)
            if end < 0:
                if len(buffer) > self.max_message_bytes:
                    raise FramingError("headers exceed the maximum message size")
                return None
            self._head_length = end + len(_END_OF_HEADERS)
            self._body_length = self._content_length(bytes(buffer[:end]))
            if self._head_length + self._body_length > self.max_message_bytes:
                raise FramingError("message exceeds the maximum message size")
        total = self._head_length + self._body_length
        if len(buffer) < total:
            return None
        message = bytes(buffer[:total])
        del buffer[:total]
        self._head_length = None
        self._body_length = 0
        return message

    def _skip_keep_alives(self) -> None:
        buffer = self._buffer
        start = 0
        while buffer[start : start + 2] == b"\r\n":
            start += 2
        if start:
            self.keep_alives += 1
            del buffer[:start]

    @staticmethod
    def _content_length(head: bytes) -> int:
        match = _CONTENT_LENGTH.search(head)
        if match is None:
            raise FramingError("no Content-Length on a stream transport")
        text = match.group(1).strip()
        if not text.isdigit():
            raise FramingError(f"bad Content-Length {text[:20]!r}")
        return int(text)
