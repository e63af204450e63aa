"""The benchmark echo agent: a WebSocket peer that answers media frames with the same audio."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time

from websockets.asyncio.client import connect

from benchmarks._echo_agent import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    EchoConnection,
    EchoProtocol,
    EchoStats,
    accept_key,
    apply_mask,
)
from benchmarks._frames import AGENT_STAMP, AGENT_STAMP_OFFSET, read_tag, tag_frame

HANDSHAKE = (
    b"GET /agent HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    key = os.urandom(4)
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        head = bytes((first, 0x80 | length))
    else:
        head = bytes((first, 0x80 | 126)) + length.to_bytes(2, "big")
    return head + key + apply_mask(payload, key)


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    frames, offset = [], 0
    while offset < len(data):
        opcode, length = data[offset] & 0x0F, data[offset + 1] & 0x7F
        offset += 2
        if length == 126:
            length = int.from_bytes(data[offset : offset + 2], "big")
            offset += 2
        frames.append((opcode, data[offset : offset + length]))
        offset += length
    return frames


def media(payload: bytes) -> bytes:
    encoded = base64.b64encode(payload).decode()
    return (
        '{"event":"media","stream_id":"s1","media":{"track":"inbound","chunk":1,'
        f'"timestamp":0,"payload":"{encoded}"}}}}'
    ).encode()


def opened(stats: EchoStats) -> EchoConnection:
    connection = EchoConnection(stats)
    response = connection.receive(HANDSHAKE)
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in response  # RFC 6455 §1.3
    assert b"X-Use-Inkbox-Speech-To-Text: false" in response
    assert b"X-Use-Inkbox-Text-To-Speech: false" in response
    return connection


def test_a_numbered_frame_comes_back_with_the_agents_stamp_and_is_counted() -> None:
    stats = EchoStats(numbered=True)
    connection = opened(stats)
    sent_ns = time.monotonic_ns()
    audio = tag_frame(4, 17, sent_ns, bytes(range(160)))
    before = time.monotonic_ns()
    frames = server_frames(connection.receive(client_frame(OP_TEXT, media(audio))))
    after = time.monotonic_ns()
    assert [opcode for opcode, _ in frames] == [OP_TEXT]
    reply = json.loads(frames[0][1])
    assert reply["event"] == "media"
    echoed = base64.b64decode(reply["media"]["payload"])
    assert len(echoed) == 160
    assert echoed[:8] == audio[:8] and echoed[16:] == audio[16:]  # only the agent stamp changes
    assert before <= AGENT_STAMP.unpack_from(echoed, AGENT_STAMP_OFFSET)[0] <= after
    assert read_tag(echoed) == (4, 17)
    assert stats.frames == 1 and stats.book.ledgers[4].count(17, 18) == 1
    arrival, latency_ms = stats.samples
    assert before / 1e9 <= arrival <= after / 1e9
    assert 0 <= latency_ms <= (after - sent_ns) / 1e6


def test_a_concealment_frame_is_echoed_unchanged_and_not_counted() -> None:
    stats = EchoStats(numbered=True)
    connection = opened(stats)
    audio = b"\xfe" * 160  # no tag a run could have written
    frames = server_frames(connection.receive(client_frame(OP_TEXT, media(audio))))
    assert base64.b64decode(json.loads(frames[0][1])["media"]["payload"]) == audio
    assert not stats.book.ledgers and not stats.samples


def test_unnumbered_frames_are_echoed_whole_and_their_arrivals_kept() -> None:
    stats = EchoStats(numbered=False)
    connection = opened(stats)
    audio = bytes(range(256)) * 2
    frames = server_frames(connection.receive(client_frame(OP_TEXT, media(audio))))
    assert base64.b64decode(json.loads(frames[0][1])["media"]["payload"]) == audio
    assert len(stats.arrivals) == 1 and stats.frames == 1


def test_other_events_get_no_answer_and_binary_frames_come_back_as_they_are() -> None:
    connection = opened(EchoStats(numbered=True))
    start = b'{"event":"start","stream_id":"s1","start":{"media_format":{}}}'
    assert connection.receive(client_frame(OP_TEXT, start)) == b""
    assert server_frames(connection.receive(client_frame(OP_BINARY, b"\x01\x02"))) == [
        (OP_BINARY, b"\x01\x02")
    ]


def test_frames_split_across_reads_and_several_in_one_read_are_all_answered() -> None:
    stats = EchoStats(numbered=False)
    connection = opened(stats)
    data = b"".join(client_frame(OP_TEXT, media(bytes([n]) * 160)) for n in range(3))
    out = b"".join(connection.receive(data[i : i + 7]) for i in range(0, len(data), 7))
    assert len(server_frames(out)) == 3 and stats.frames == 3
    data = b"".join(client_frame(OP_TEXT, media(bytes([n]) * 160)) for n in range(4))
    assert len(server_frames(connection.receive(data))) == 4


def test_fragmented_messages_ping_and_close() -> None:
    stats = EchoStats(numbered=False)
    connection = opened(stats)
    message = media(b"\x33" * 160)
    first = client_frame(OP_TEXT, message[:50], fin=False)
    second = client_frame(OP_PING, b"hi")  # control frames may come between fragments
    last = client_frame(0, message[50:])
    frames = server_frames(connection.receive(first + second + last))
    assert [opcode for opcode, _ in frames] == [OP_PONG, OP_TEXT]
    assert frames[0][1] == b"hi"
    closing = connection.receive(client_frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye"))
    assert server_frames(closing) == [(OP_CLOSE, (1000).to_bytes(2, "big"))]
    assert connection.closing


def test_unmasked_client_frames_are_a_protocol_error() -> None:
    connection = opened(EchoStats(numbered=False))
    out = connection.receive(bytes((0x81, 2)) + b"hi")
    assert server_frames(out)[0][0] == OP_CLOSE
    assert int.from_bytes(server_frames(out)[0][1][:2], "big") == 1002
    assert connection.closing


def test_a_request_that_is_not_an_upgrade_is_refused() -> None:
    connection = EchoConnection(EchoStats(numbered=False))
    assert connection.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert connection.closing


def test_accept_key_follows_rfc_6455() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_real_websocket_client_gets_its_frames_echoed() -> None:
    async def scenario() -> None:
        stats = EchoStats(numbered=True)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: EchoProtocol(stats), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with connect(f"ws://127.0.0.1:{port}/agent", compression=None) as ws:
                assert ws.response is not None
                assert ws.response.headers["X-Use-Inkbox-Text-To-Speech"] == "false"
                for number in range(3):
                    audio = tag_frame(1, number, time.monotonic_ns(), b"\x55" * 160)
                    await ws.send(media(audio).decode())
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    echoed = base64.b64decode(reply["media"]["payload"])
                    assert read_tag(echoed) == (1, number)
                    assert struct.unpack_from("!q", echoed, AGENT_STAMP_OFFSET)[0] > 0
                pong = await ws.ping()
                assert await asyncio.wait_for(pong, 5) >= 0  # the pong came back
            assert stats.book.ledgers[1].count(0, 3) == 3
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(scenario(), 20))
