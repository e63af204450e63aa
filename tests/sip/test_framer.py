"""Stream framing of SIP messages (RFC 3261 §18.3): split, coalesced, keep-alives, limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.gateway.sip.framer import FramingError, StreamFramer
from trunkline.gateway.sip.message import SipRequest, parse_message


def message(call_id: str, body: bytes = b"", compact: bool = False) -> bytes:
    length = "l" if compact else "Content-Length"
    return (
        "OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK1\r\n"
        f"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
        f"{length}: {len(body)}\r\n\r\n"
    ).encode() + body


def test_coalesced_messages_come_out_one_by_one() -> None:
    framer = StreamFramer()
    first, second = message("a", b"v=0\r\n"), message("b")
    assert framer.feed(first + second) == [first, second]
    assert framer.buffered == 0


def test_a_message_split_anywhere_comes_out_whole_once() -> None:
    whole = message("split", b"x" * 300, compact=True)
    for cut in range(1, len(whole)):
        framer = StreamFramer()
        assert framer.feed(whole[:cut]) == []
        assert framer.feed(whole[cut:]) == [whole]


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_any_chunking_of_a_stream_yields_the_same_messages(sizes: list[int]) -> None:
    stream = b"\r\n\r\n" + message("1", b"abc") + b"\r\n" + message("2") + message("3", b"z" * 90)
    framer = StreamFramer()
    out: list[bytes] = []
    offset = 0
    for size in sizes * 50:
        if offset >= len(stream):
            break
        out += framer.feed(stream[offset : offset + size])
        offset += size
    out += framer.feed(stream[offset:])
    parsed = [parse_message(m) for m in out]
    assert [p.call_id for p in parsed] == ["1", "2", "3"]
    assert all(isinstance(p, SipRequest) for p in parsed)
    assert framer.keep_alives >= 2  # a ping split across reads counts once per part


def test_body_bytes_are_not_taken_for_the_next_message() -> None:
    body = b"\r\n\r\nINVITE not a message\r\n\r\n"
    framer = StreamFramer()
    assert framer.feed(message("a", body) + message("b")) == [message("a", body), message("b")]


def test_oversized_content_length_is_refused_before_the_body_arrives() -> None:
    framer = StreamFramer(max_message_bytes=1000)
    head = message("big")[: -len(b"Content-Length: 0\r\n\r\n")] + b"Content-Length: 5000\r\n\r\n"
    with pytest.raises(FramingError, match="maximum"):
        framer.feed(head)


def test_endless_headers_are_refused_at_the_limit() -> None:
    framer = StreamFramer(max_message_bytes=1000)
    framer.feed(b"INVITE sip:x@y SIP/2.0\r\n")
    with pytest.raises(FramingError, match="headers exceed"):
        for _ in range(100):
            framer.feed(b"X-Filler: " + b"a" * 20 + b"\r\n")
    assert framer.buffered <= 1000 + 40


@pytest.mark.parametrize("length", ["", "abc", "-1"])
def test_missing_or_bad_content_length_cannot_be_framed(length: str) -> None:
    raw = message("x").replace(b"Content-Length: 0\r\n", b"")
    if length:
        raw = raw.replace(b"\r\n\r\n", f"\r\nContent-Length: {length}\r\n\r\n".encode())
    with pytest.raises(FramingError):
        StreamFramer().feed(raw)
