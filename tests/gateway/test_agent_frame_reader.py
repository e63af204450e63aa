"""The agent link's reader of server frames, held to websockets' own parser.

Random frame sequences — messages whole and fragmented, control frames
between fragments, and now and then a frame that breaks RFC 6455 — are
serialized, cut into random chunks and fed both to ``ServerFrameReader`` and
to websockets' sans-I/O protocol (client side, open); what each makes of them
must agree. websockets leaves text's UTF-8 to the application, so the model
decodes it and expects 1007 where it is not UTF-8. Every test runs with both
splitters of the usual frame: the C extension's and its pure-Python twin's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib
import importlib.util
import itertools
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ProtocolError
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from tests.conftest import require
from trunkline import _speedups_py
from trunkline.agent import link as link_module
from trunkline.agent import server_frames
from trunkline.agent.link import AgentLink, connect_agent
from trunkline.agent.server_frames import Failed, Ping, Pong, ServerEvent, ServerFrameReader

MAX_BYTES = 1_048_576
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The splitter is chosen once per test, not per example: that is what the fixture is for.
FIXTURE_ONCE = [HealthCheck.function_scoped_fixture]


@pytest.fixture(params=["c", "python"], autouse=True)
def splitter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The reader splits the usual frames with the C extension, then with the twin."""
    module = _speedups_py
    if request.param == "c":
        compiled = importlib.util.find_spec("trunkline._speedups")
        require(compiled is not None, "the C extension trunkline._speedups is not built")
        module = importlib.import_module("trunkline._speedups")
    monkeypatch.setattr(server_frames, "ws_server_frames", module.ws_server_frames)
    return module


# -- frames on the wire -----------------------------------------------------------------


@dataclass(frozen=True)
class WireFrame:
    """One frame as a server might send it, right or wrong."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0  # the three reserved bits, 0-7
    mask: bytes | None = None  # a server must not mask
    wide: int = 0  # 0: shortest length encoding; 2 or 8: a 16- or 64-bit length anyway

    def serialize(self) -> bytes:
        first = (0x80 if self.fin else 0) | (self.rsv << 4) | self.opcode
        masked = 0x80 if self.mask is not None else 0
        size = len(self.payload)
        if self.wide == 8 or size > 0xFFFF:
            head = struct.pack("!BBQ", first, masked | 127, size)
        elif self.wide == 2 or size > 125:
            head = struct.pack("!BBH", first, masked | 126, size)
        else:
            head = bytes((first, masked | size))
        if self.mask is None:
            return head + self.payload
        key = self.mask
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(self.payload))


def wire(frames: list[WireFrame]) -> bytes:
    return b"".join(frame.serialize() for frame in frames)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


# -- what websockets makes of a stream ------------------------------------------------------


def websockets_reads(stream: bytes, chunks: list[int], max_bytes: int) -> list[ServerEvent]:
    """websockets' client protocol, open, fed ``stream`` in ``chunks``: its frames assembled
    into messages, its verdict as ``Failed``, and text decoded as the link decodes it."""
    protocol = Protocol(Side.CLIENT, state=State.OPEN, max_size=max_bytes)
    frames: list[Frame] = []
    for piece in cut(stream, chunks):
        protocol.receive_data(piece)
        frames.extend(event for event in protocol.events_received() if isinstance(event, Frame))
    events: list[ServerEvent] = []
    fragments: list[bytes] = []
    first_opcode = Opcode.TEXT
    for frame in frames:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            if frame.opcode is not Opcode.CONT:
                first_opcode, fragments = frame.opcode, []
            fragments.append(bytes(frame.data))
            if not frame.fin:
                continue
            message = b"".join(fragments)
            if first_opcode is Opcode.BINARY:
                events.append(message)
                continue
            try:
                events.append(message.decode())
            except UnicodeDecodeError as exc:  # websockets leaves this to the application
                return [*events, Failed(1007, f"{exc.reason} at position {exc.start}")]
        elif frame.opcode is Opcode.PING:
            events.append(Ping(bytes(frame.data)))
        elif frame.opcode is Opcode.PONG:
            events.append(Pong(bytes(frame.data)))
        else:
            assert protocol.close_rcvd is not None
            events.append(protocol.close_rcvd)
    failure = protocol.parser_exc
    if failure is None:
        return events
    if (
        isinstance(failure, ProtocolError)
        and str(failure) == "incomplete fragmented message"
        and protocol.close_rcvd is not None
    ):
        # RFC 6455 §5.4 lets a close frame come between fragments: the reader takes it as
        # the agent's close (websockets fails the connection, having read the same close).
        return [*events, protocol.close_rcvd]
    assert protocol.close_sent is not None
    return [*events, Failed(protocol.close_sent.code, protocol.close_sent.reason)]


def cut(stream: bytes, chunks: list[int]) -> Iterator[bytes]:
    offset = 0
    for size in chunks:
        if offset >= len(stream):
            return
        yield stream[offset : offset + size]
        offset += size
    if offset < len(stream):
        yield stream[offset:]


def reader_reads(stream: bytes, chunks: list[int], max_bytes: int) -> list[ServerEvent]:
    reader = ServerFrameReader(max_bytes)
    events: list[ServerEvent] = []
    for piece in cut(stream, chunks):
        events.extend(reader.receive(piece))
    return events


def codes(events: list[ServerEvent]) -> list[object]:
    """Events compared: a failure by its code (the reasons' wording may differ)."""
    return [event.code if isinstance(event, Failed) else event for event in events]


# -- random streams -------------------------------------------------------------------------

payloads = st.binary(max_size=300) | st.sampled_from([b"", b"x" * 125, b"y" * 126, b"z" * 70_000])
texts = st.text(max_size=120)
control_payloads = st.binary(max_size=125)


@st.composite
def messages(draw: st.DrawFn) -> list[WireFrame]:
    """One message, whole or in fragments, with control frames between the fragments."""
    if draw(st.booleans()):
        opcode, body = Opcode.TEXT, draw(texts).encode()
    else:
        opcode, body = Opcode.BINARY, draw(payloads)
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    frames = []
    for index, part in enumerate(parts):
        first = index == 0
        frames.append(
            WireFrame(
                opcode if first else Opcode.CONT,
                part,
                fin=index == len(parts) - 1,
                wide=draw(st.sampled_from([0, 0, 0, 2, 8])),
            )
        )
        if index < len(parts) - 1 and draw(st.integers(0, 3)) == 0:
            frames.append(draw(controls()))
    return frames


@st.composite
def controls(draw: st.DrawFn) -> WireFrame:
    return WireFrame(draw(st.sampled_from([Opcode.PING, Opcode.PONG])), draw(control_payloads))


@st.composite
def closes(draw: st.DrawFn) -> WireFrame:
    payload = draw(
        st.sampled_from([b"", b"\x03", close_payload(1005), close_payload(999)])
        | st.builds(
            close_payload,
            st.sampled_from([1000, 1001, 1011, 1012, 3000, 4000, 4999]),
            st.text(max_size=20),
        )
        | st.builds(lambda: close_payload(1000) + b"\xff\xfe")
    )
    return WireFrame(Opcode.CLOSE, payload)


@st.composite
def broken(draw: st.DrawFn) -> WireFrame:
    """A frame a server must not send."""
    kind = draw(st.sampled_from(["mask", "rsv", "opcode", "long_control", "fragmented_control"]))
    if kind == "mask":
        return WireFrame(Opcode.TEXT, b"masked", mask=draw(st.binary(min_size=4, max_size=4)))
    if kind == "rsv":
        return WireFrame(Opcode.BINARY, draw(payloads), rsv=draw(st.integers(1, 7)))
    if kind == "opcode":
        return WireFrame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), b"?")
    if kind == "long_control":
        return WireFrame(draw(st.sampled_from([Opcode.PING, Opcode.PONG])), b"p" * 126)
    return WireFrame(Opcode.PING, b"p", fin=False)


@st.composite
def streams(draw: st.DrawFn) -> list[WireFrame]:
    frames: list[WireFrame] = []
    for _ in range(draw(st.integers(0, 6))):
        choice = draw(st.integers(0, 9))
        if choice < 6:
            frames.extend(draw(messages()))
        elif choice < 8:
            frames.append(draw(controls()))
        elif choice == 8:
            frames.append(draw(broken()))
        elif draw(st.booleans()):  # a continuation with no message to continue
            frames.append(WireFrame(Opcode.CONT, b"s", fin=draw(st.booleans())))
        else:  # a message left unfinished: what follows must continue it
            frames.append(
                WireFrame(draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY])), b"u", fin=False)
            )
    if draw(st.booleans()):
        frames.append(draw(closes()))
        frames.extend(draw(messages()))  # after a close: never read
    return frames


chunkings = st.lists(st.integers(1, 400), max_size=40)
limits = st.sampled_from([MAX_BYTES, 300, 64, 0])


@settings(max_examples=600, deadline=None, suppress_health_check=FIXTURE_ONCE)
@given(frames=streams(), chunks=chunkings, max_bytes=limits)
def test_the_reader_reads_what_websockets_reads(
    frames: list[WireFrame], chunks: list[int], max_bytes: int
) -> None:
    stream = wire(frames)
    assert codes(reader_reads(stream, chunks, max_bytes)) == codes(
        websockets_reads(stream, chunks, max_bytes)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_ONCE)
@given(frames=streams(), chunks=chunkings, max_bytes=limits, data=st.data())
def test_a_stream_cut_short_gives_a_prefix_of_what_all_of_it_gives(
    frames: list[WireFrame], chunks: list[int], max_bytes: int, data: st.DataObject
) -> None:
    stream = wire(frames)
    whole = reader_reads(stream, [len(stream)], max_bytes)
    part = reader_reads(stream[: data.draw(st.integers(0, len(stream)))], chunks, max_bytes)
    assert whole[: len(part)] == part


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURE_ONCE)
@given(texts=st.lists(texts, max_size=8), chunks=chunkings)
def test_usual_frames_come_out_whole_however_the_bytes_are_cut(
    texts: list[str], chunks: list[int]
) -> None:
    stream = wire([WireFrame(Opcode.TEXT, text.encode()) for text in texts])
    reader = ServerFrameReader(MAX_BYTES)
    events: list[ServerEvent] = []
    for piece in cut(stream, chunks):
        events.extend(reader.receive(piece))
    assert events == texts and reader.buffered_bytes == 0 and not reader.done


# -- one frame at a time: each outcome by name ----------------------------------------------


def read(*frames: WireFrame, max_bytes: int = MAX_BYTES) -> list[ServerEvent]:
    return ServerFrameReader(max_bytes).receive(wire(list(frames)))


def test_text_binary_and_control_frames_come_out_as_they_are() -> None:
    assert read(
        WireFrame(Opcode.TEXT, "é".encode()),
        WireFrame(Opcode.BINARY, b"\x00\xff"),
        WireFrame(Opcode.PING, b"are you there"),
        WireFrame(Opcode.PONG, b""),
        WireFrame(Opcode.TEXT, b"x" * 70_000),
    ) == ["é", b"\x00\xff", Ping(b"are you there"), Pong(b""), "x" * 70_000]


def test_a_fragmented_message_is_joined_with_a_ping_between_its_fragments() -> None:
    word = "naïve".encode()  # cut inside the two-byte ï
    assert read(
        WireFrame(Opcode.TEXT, word[:3], fin=False),
        WireFrame(Opcode.PING, b"1"),
        WireFrame(Opcode.CONT, word[3:5], fin=False),
        WireFrame(Opcode.CONT, word[5:]),
    ) == [Ping(b"1"), "naïve"]


def test_a_close_frame_ends_reading_with_its_code_and_reason() -> None:
    reader = ServerFrameReader(MAX_BYTES)
    events = reader.receive(
        wire(
            [
                WireFrame(Opcode.CLOSE, close_payload(4001, "bye")),
                WireFrame(Opcode.TEXT, b"after"),
            ]
        )
    )
    assert events == [Close(4001, "bye")] and reader.done
    assert reader.receive(wire([WireFrame(Opcode.TEXT, b"later")])) == []


def test_a_close_frame_without_a_code_is_1005() -> None:
    assert read(WireFrame(Opcode.CLOSE, b"")) == [Close(1005, "")]


def test_a_close_frame_between_fragments_is_the_agents_close() -> None:
    assert read(
        WireFrame(Opcode.TEXT, b"unfin", fin=False), WireFrame(Opcode.CLOSE, close_payload(1000))
    ) == [Close(1000, "")]


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([WireFrame(Opcode.TEXT, b"hi", mask=b"abcd")], 1002),  # a server never masks
        ([WireFrame(Opcode.TEXT, b"hi", rsv=4)], 1002),  # no extension was negotiated
        ([WireFrame(3, b"")], 1002),  # a reserved opcode
        ([WireFrame(Opcode.PING, b"p" * 126)], 1002),
        ([WireFrame(Opcode.PONG, b"", fin=False)], 1002),
        ([WireFrame(Opcode.CONT, b"nothing to continue")], 1002),
        ([WireFrame(Opcode.TEXT, b"a", fin=False), WireFrame(Opcode.BINARY, b"b")], 1002),
        ([WireFrame(Opcode.CLOSE, b"\x03")], 1002),  # one byte: half a code
        ([WireFrame(Opcode.CLOSE, close_payload(1005))], 1002),  # never on the wire
        ([WireFrame(Opcode.CLOSE, close_payload(1000) + b"\xc3")], 1007),
        ([WireFrame(Opcode.TEXT, b"\xc3\x28")], 1007),  # not UTF-8
        ([WireFrame(Opcode.TEXT, b"\xed\xa0\x80")], 1007),  # a surrogate is not UTF-8 either
        ([WireFrame(Opcode.TEXT, b"\xc3", fin=False), WireFrame(Opcode.CONT, b"")], 1007),
    ],
)
def test_frames_a_server_must_not_send_fail_the_connection(
    frames: list[WireFrame], code: int
) -> None:
    reader = ServerFrameReader(MAX_BYTES)
    *before, verdict = reader.receive(wire(frames))
    assert isinstance(verdict, Failed) and verdict.code == code and reader.done
    assert reader.receive(wire([WireFrame(Opcode.TEXT, b"later")])) == []


def test_a_message_over_the_limit_fails_before_its_payload_is_buffered() -> None:
    reader = ServerFrameReader(1000)
    header = WireFrame(Opcode.BINARY, b"b" * 5000).serialize()[:4]  # the length only
    (verdict,) = reader.receive(header)
    assert verdict == Failed(1009, "frame with 5000 bytes exceeds limit of 1000 bytes")
    assert reader.buffered_bytes == 0


def test_fragments_add_up_to_the_limit() -> None:
    fragments = [
        WireFrame(Opcode.BINARY, b"a" * 600, fin=False),
        WireFrame(Opcode.CONT, b"b" * 400, fin=False),  # 1000: still within
        WireFrame(Opcode.CONT, b"c"),
    ]
    assert read(*fragments[:2], WireFrame(Opcode.CONT, b""), max_bytes=1000) == [
        b"a" * 600 + b"b" * 400
    ]
    *_, verdict = read(*fragments, max_bytes=1000)
    assert isinstance(verdict, Failed) and verdict.code == 1009


def test_a_frame_not_all_here_waits_for_the_rest() -> None:
    frame = WireFrame(Opcode.TEXT, b"x" * 300).serialize()
    reader = ServerFrameReader(MAX_BYTES)
    assert reader.receive(frame[:1]) == [] and reader.receive(frame[1:200]) == []
    assert reader.buffered_bytes == 200
    assert reader.receive(frame[200:] + frame[:3]) == ["x" * 300]
    assert reader.buffered_bytes == 3


# -- the link on real sockets ---------------------------------------------------------------


class Heard:
    """What a link's callbacks were given."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.binary: list[bytes] = []
        self.closed: list[tuple[int | None, str]] = []
        self.ended = asyncio.Event()

    def on_closed(self, code: int | None, reason: str) -> None:
        self.closed.append((code, reason))
        self.ended.set()


async def open_link(url: str, heard: Heard) -> AgentLink:
    link = await connect_agent(url, {}, heard.texts.append, heard.on_closed, allow_private=True)
    link.on_binary = heard.binary.append
    return link


def failures(code: int) -> float:
    return (
        REGISTRY.get_sample_value("trunkline_agent_socket_failures_total", {"code": str(code)})
        or 0.0
    )


async def test_messages_pings_and_the_agents_close_code_reach_the_link() -> None:
    heard, pong_seen, server_closed = Heard(), asyncio.Event(), asyncio.Event()
    echoed: list[int | None] = []

    async def agent(connection: ServerConnection) -> None:
        await connection.recv()  # the link is ready for binary frames
        await connection.send(["frag", "mented ", "ï"])  # one text message in three frames
        await connection.send(b"\x00\x01")
        await (await connection.ping(b"here?"))  # resolves when the link's pong comes back
        pong_seen.set()
        await connection.close(4001, "agent done")
        echoed.append(
            connection.protocol.close_rcvd.code if connection.protocol.close_rcvd else None
        )
        server_closed.set()

    async with serve(agent, "127.0.0.1", 0) as server:
        link = await open_link(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", heard)
        assert link.send_text("ready")
        try:
            await asyncio.wait_for(heard.ended.wait(), 5)
            await asyncio.wait_for(server_closed.wait(), 5)
        finally:
            link.abort()
    assert pong_seen.is_set()
    assert heard.texts == ["fragmented ï"] and heard.binary == [b"\x00\x01"]
    assert heard.closed == [(4001, "agent done")] and link.close_code == 4001
    assert echoed == [4001]  # the link echoed the close frame (RFC 6455 §5.5.1)
    assert link.frames_in == 2


@pytest.mark.parametrize(
    ("send", "code"),
    [
        (lambda connection: connection.send(b"\xc3\x28", text=True), 1007),  # not UTF-8
        (lambda connection: connection.send("x" * (MAX_BYTES + 1)), 1009),
    ],
)
async def test_a_frame_that_breaks_the_protocol_fails_the_link_and_is_counted(
    send: Any, code: int
) -> None:
    heard, got = Heard(), asyncio.Event()
    received_close: list[int | None] = []

    async def agent(connection: ServerConnection) -> None:
        await connection.send("before")
        await send(connection)
        with contextlib.suppress(ConnectionClosed):
            await connection.recv()
        received_close.append(connection.close_code)
        got.set()

    before = failures(code)
    async with serve(agent, "127.0.0.1", 0, max_size=None) as server:
        link = await open_link(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", heard)
        try:
            await asyncio.wait_for(got.wait(), 5)
            await asyncio.wait_for(heard.ended.wait(), 5)
        finally:
            link.abort()
    assert received_close == [code]  # the link's close frame said why
    assert heard.texts == ["before"]
    assert heard.closed == [(None, "")]  # failed: the agent's own close frame is not read
    assert failures(code) - before == 1


class RawAgent:
    """A WebSocket server written by hand: the bytes it sends, and how they are cut, are the
    test's. It answers the upgrade and writes ``frames`` after it, in writes that end at
    ``cuts`` (offsets from the end of the response's head), then reads what comes."""

    def __init__(self, frames: bytes, *, cuts: list[int] | None = None) -> None:
        self.frames = frames
        self.cuts = cuts or []
        self.received = bytearray()
        self.server: asyncio.Server | None = None
        self.served = asyncio.Event()  # the link's side of the connection ended

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.wait_for(self.served.wait(), 5)  # the test ended its link
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._answer(reader, writer)
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(4096):
                    self.received += chunk
        finally:
            writer.close()
            self.served.set()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        request = await reader.readuntil(b"\r\n\r\n")
        key = re.search(rb"(?i)sec-websocket-key: *(\S+)", request)
        assert key is not None
        accept = base64.b64encode(hashlib.sha1(key.group(1) + WS_GUID).digest())
        response = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        data = response + self.frames
        cuts = [0, *(len(response) + cut for cut in self.cuts), len(data)]
        for start, stop in itertools.pairwise(cuts):
            writer.write(data[start:stop])
            await writer.drain()
            await asyncio.sleep(0.005)  # its own segment

    def close_code_received(self) -> int | None:
        """The code of the first (masked) frame the link sent, if it is a close frame."""
        data = self.received
        if len(data) < 6 or data[0] != 0x88:
            return None
        size, key = data[1] & 0x7F, data[2:6]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[6 : 6 + size]))
        return int.from_bytes(payload[:2], "big")


async def test_frames_in_the_same_segment_as_the_101_are_read() -> None:
    heard = Heard()
    frames = wire([WireFrame(Opcode.TEXT, b"one"), WireFrame(Opcode.TEXT, b"two")])
    async with RawAgent(frames) as url:  # the response and both frames in one write
        link = await open_link(url, heard)
        try:
            for _ in range(100):
                if len(heard.texts) == 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            link.abort()
    assert heard.texts == ["one", "two"]


async def test_a_response_cut_inside_its_last_line_break_still_opens_the_link() -> None:
    heard = Heard()
    frames = wire([WireFrame(Opcode.TEXT, b"after the head")])
    # Each of the head's last three bytes in a write of its own, then the frame in two.
    async with RawAgent(frames, cuts=[-3, -2, -1, 2]) as url:
        link = await open_link(url, heard)
        try:
            for _ in range(100):
                if heard.texts:
                    break
                await asyncio.sleep(0.01)
        finally:
            link.abort()
    assert heard.texts == ["after the head"]


@pytest.mark.parametrize(
    ("frame", "close_sent", "heard_close"),
    [
        (WireFrame(Opcode.CLOSE, close_payload(4002, "bye")), 4002, (4002, "bye")),  # echoed
        (WireFrame(Opcode.TEXT, b"masked", mask=b"abcd"), 1002, (None, "")),  # failed
    ],
)
async def test_an_agent_that_keeps_its_socket_open_after_the_close_frames_is_aborted(
    monkeypatch: pytest.MonkeyPatch,
    frame: WireFrame,
    close_sent: int,
    heard_close: tuple[int | None, str],
) -> None:
    monkeypatch.setattr(link_module, "CLOSING_SECONDS", 0.2)
    heard = Heard()
    raw = RawAgent(frame.serialize())  # and then it never closes the TCP connection
    async with raw as url:
        link = await open_link(url, heard)
        try:
            await asyncio.wait_for(heard.ended.wait(), 5)
        finally:
            link.abort()
        await asyncio.sleep(0.05)
    assert raw.close_code_received() == close_sent
    assert heard.closed == [heard_close]
