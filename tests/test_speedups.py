"""The media path's C extension and its pure-Python twin: same results, same errors.

Every property runs against both implementations; the C one must be built
(CI fails without it). The chosen one (``trunkline.speedups``) is the C
extension unless ``TRUNKLINE_NO_SPEEDUPS=1``, which CI's second pass sets.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import os
import socket
import struct
import time
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from tests.conftest import require
from trunkline import _speedups_py, speedups
from trunkline.agent.inkbox_protocol import (
    MAX_MEDIA_BYTES,
    AgentProtocolError,
    MediaFrameEncoder,
    parse_agent_frame,
    parse_agent_frame_fully,
)
from trunkline.agent.link import connect_agent
from trunkline.agent.twilio_protocol import (
    TwilioPersona,
    parse_twilio_agent_frame,
    parse_twilio_agent_frame_fully,
)
from trunkline.codecs.resample import lowpass
from trunkline.gateway.rtp.packet import RtpParseError, build_packet, parse_packet


def compiled() -> ModuleType | None:
    try:
        return importlib.import_module("trunkline._speedups")
    except ImportError:
        return None


@pytest.fixture(params=["c", "python"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "python":
        return _speedups_py
    module = compiled()
    require(module is not None, "the C extension trunkline._speedups is not built")
    assert module is not None
    return module


def both() -> tuple[ModuleType, ModuleType]:
    module = compiled()
    require(module is not None, "the C extension trunkline._speedups is not built")
    assert module is not None
    return module, _speedups_py


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    """What a call gives: its result (memoryviews as bytes), or its error type and message."""
    try:
        result = function(*args)
    except Exception as exc:
        return "error", (type(exc).__name__, str(exc))
    if isinstance(result, tuple):
        result = tuple(bytes(v) if isinstance(v, memoryview) else v for v in result)
    return "result", result


def test_the_c_extension_is_built_and_chosen_unless_disabled() -> None:
    require(compiled() is not None, "the C extension trunkline._speedups is not built")
    disabled = os.environ.get(speedups.DISABLE_VARIABLE, "") == "1"
    assert speedups.ACCELERATED is not disabled
    assert speedups.parse_rtp is (_speedups_py.parse_rtp if disabled else compiled().parse_rtp)  # type: ignore[union-attr]
    assert ("pure Python" in speedups.describe()) is disabled


# -- RTP ------------------------------------------------------------------------------


@st.composite
def rtp_packets(draw: st.DrawFn) -> bytes:
    """Packets near the valid shape: CSRCs, extensions and padding, sometimes inconsistent."""
    csrc = draw(st.integers(0, 15))
    extension = draw(st.booleans())
    padding = draw(st.booleans())
    first = (draw(st.sampled_from([2, 2, 2, 1, 3])) << 6) | csrc | extension << 4 | padding << 5
    header = bytes([first, draw(st.integers(0, 255))]) + draw(st.binary(min_size=10, max_size=10))
    body = draw(st.binary(max_size=4 * csrc + 4))
    if extension:
        body += struct.pack("!HH", 0xBEDE, draw(st.integers(0, 3))) + draw(st.binary(max_size=12))
    body += draw(st.binary(max_size=200))
    if padding:
        body += bytes([draw(st.integers(0, 255))])
    return (header + body)[: draw(st.integers(0, len(header + body)))]


@settings(max_examples=400)
@given(data=st.one_of(rtp_packets(), st.binary(max_size=64)))
def test_rtp_parse_is_the_same_in_both(data: bytes) -> None:
    c, py = both()
    assert outcome(c.parse_rtp, data) == outcome(py.parse_rtp, data)
    assert outcome(c.parse_rtp, memoryview(data)) == outcome(py.parse_rtp, bytearray(data))


def test_rtp_parse_reads_csrcs_extension_and_padding(impl: ModuleType) -> None:
    packet = (
        bytes([0x80 | 0x20 | 0x10 | 2, 0x80 | 8])
        + struct.pack("!HII", 65535, 4_000_000_000, 0xDEADBEEF)
        + b"C1C1C2C2"
        + struct.pack("!HH", 0xBEDE, 1)
        + b"ext!"
        + b"audio"
        + b"\x00\x00\x03"
    )
    *fields, payload = impl.parse_rtp(packet)
    assert fields == [8, True, 65535, 4_000_000_000, 0xDEADBEEF]
    assert isinstance(payload, memoryview) and bytes(payload) == b"audio"
    assert bytes(impl.parse_rtp(b"\x80\x00" + bytes(10))[5]) == b""  # a bare header parses


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (b"", "shorter than an RTP header"),
        (b"\x40" + bytes(11), "not RTP version 2"),
        (b"\x90" + bytes(11), "truncated header extension"),
        (b"\xa0" + bytes(11), "bad padding length"),
        (b"\xa0" + bytes(10) + b"\x0d", "bad padding length"),
        (b"\x81" + bytes(11), "header longer than the packet"),
    ],
)
def test_rtp_parse_errors_say_what_is_wrong(impl: ModuleType, packet: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        impl.parse_rtp(packet)


def test_malformed_packets_are_rtp_parse_errors() -> None:
    with pytest.raises(RtpParseError, match="not RTP version 2"):
        parse_packet(b"\x00" * 20)
    packet = parse_packet(build_packet_bytes(b"abc"))
    assert (packet.payload_type, packet.sequence, bytes(packet.payload)) == (0, 7, b"abc")


def build_packet_bytes(payload: bytes) -> bytes:
    return build_packet(payload, payload_type=0, sequence=7, timestamp=1, ssrc=2)


big = st.integers(-(2**70), 2**70)


@given(
    payload=st.binary(max_size=300),
    fields=st.tuples(big, big, big, big),
    marker=st.booleans(),
    view=st.booleans(),
)
def test_rtp_build_is_the_same_in_both(
    payload: bytes, fields: tuple[int, int, int, int], marker: bool, view: bool
) -> None:
    c, py = both()
    given_payload = memoryview(b"xx" + payload)[2:] if view else payload
    packets = [m.build_rtp(given_payload, *fields, marker) for m in (c, py)]
    assert type(packets[0]) is type(packets[1]) is bytes
    assert packets[0] == packets[1]
    assert len(packets[0]) == 12 + len(payload)
    parsed = py.parse_rtp(packets[0])
    assert parsed[0] == fields[0] & 0x7F and parsed[1] is marker
    assert parsed[2:5] == (fields[1] & 0xFFFF, fields[2] & 0xFFFFFFFF, fields[3] & 0xFFFFFFFF)
    assert bytes(parsed[5]) == payload


def test_rtp_build_refuses_fields_that_are_not_integers(impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        impl.build_rtp(b"ab", 0, 1.5, 0, 0, False)  # type: ignore[arg-type]


# -- media frames to the agent ----------------------------------------------------------


@given(
    prefix=st.binary(max_size=80), payload=st.binary(max_size=2000), suffix=st.binary(max_size=8)
)
def test_media_frames_are_the_same_in_both(prefix: bytes, payload: bytes, suffix: bytes) -> None:
    c, py = both()
    expected = prefix + base64.b64encode(payload) + suffix
    assert c.encode_media_frame(prefix, payload, suffix) == expected
    assert py.encode_media_frame(prefix, memoryview(payload), suffix) == expected


def test_media_frames_are_the_json_they_always_were() -> None:
    encoder = MediaFrameEncoder("stream-\u00e9")
    frames = [json.loads(encoder.encode(bytes([n]) * n)) for n in (0, 1, 160)]
    assert [f["media"]["chunk"] for f in frames] == [1, 2, 3]
    assert [f["media"]["timestamp"] for f in frames] == [0, 20, 40]
    assert [base64.b64decode(f["media"]["payload"]) for f in frames] == [
        b"",
        b"\x01",
        b"\xa0" * 160,
    ]
    assert frames[0]["stream_id"] == "stream-\u00e9"
    twilio = TwilioPersona("call-1", "org-1", "stream-1")
    twilio.mark("before")  # sequence numbers count every message
    media = json.loads(twilio.media(b"\xff" * 160))
    assert (media["sequenceNumber"], media["media"]["chunk"], media["media"]["timestamp"]) == (
        "2",
        "1",
        "0",
    )
    assert media["streamSid"] == twilio.stream_sid


# -- media frames from the agent ----------------------------------------------------------

simple_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
base64_text = st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode())
payloads = st.one_of(
    base64_text,
    base64_text,
    base64_text.map(lambda s: s.rstrip("=")),  # bad padding
    base64_text.map(lambda s: s + "="),  # excess padding (the full parser allows it)
    st.text(alphabet="ABCab01+/=-_ \n\u00e9\\", max_size=40),  # invalid base64, non-ASCII
    st.integers(),
    st.none(),
)


@st.composite
def agent_frames(draw: st.DrawFn) -> str:
    frame: dict[str, Any] = {}
    for key in draw(st.permutations(["event", "media", "streamSid", "sequenceNumber", "x"])):
        if key == "event":
            frame[key] = draw(st.sampled_from(["media", "media", "mark", "Media", 3]))
        elif key == "media":
            media = {"payload": draw(payloads), "track": "outbound", "chunk": draw(simple_values)}
            frame[key] = draw(st.sampled_from([media, media, [media], "x"]))
        elif draw(st.booleans()):
            frame[key] = draw(
                st.one_of(
                    simple_values, st.dictionaries(st.text(max_size=3), simple_values, max_size=2)
                )
            )
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    text = json.dumps(frame, separators=separators, ensure_ascii=draw(st.booleans()))
    mutation = draw(st.sampled_from(["none", "none", "none", "cut", "dup", "pad"]))
    if mutation == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif mutation == "dup":  # a duplicate key: json.loads keeps the last
        text = text[:-1] + ',"event":"mark"}' if len(text) > 2 else text
    elif mutation == "pad":
        text = " \r\n" + text + "\t"
    return text


def full_parse(parser: Any, text: str) -> tuple[str, Any]:
    try:
        return "message", parser(text)
    except AgentProtocolError as exc:
        return "error", (str(exc), exc.reason)


@settings(max_examples=500)
@given(text=st.one_of(agent_frames(), st.text(max_size=80)))
def test_media_payloads_read_fast_are_what_the_full_parser_reads(text: str) -> None:
    limit = MAX_MEDIA_BYTES * 2
    for module in both():
        audio = module.decode_media_payload(text, limit)
        for fully in (parse_agent_frame_fully, parse_twilio_agent_frame_fully):
            kind, message = full_parse(fully, text)
            if audio is not None:  # when read fast, the full parser reads the same audio
                assert kind == "message" and message.payload == audio
    for fast, fully in (
        (parse_agent_frame, parse_agent_frame_fully),
        (parse_twilio_agent_frame, parse_twilio_agent_frame_fully),
    ):
        assert full_parse(fast, text) == full_parse(fully, text)


@given(
    audio=st.binary(max_size=1200),
    extra=st.dictionaries(st.sampled_from(["streamSid", "stream_id", "x"]), simple_values),
    separators=st.sampled_from([(",", ":"), (", ", ": ")]),
)
def test_usual_media_frames_take_the_fast_path_in_c(
    audio: bytes, extra: dict[str, Any], separators: tuple[str, str]
) -> None:
    c, _ = both()
    media = {"track": "outbound", "chunk": 3, "payload": base64.b64encode(audio).decode()}
    for frame in ({"event": "media", **extra, "media": media}, {"media": media, "event": "media"}):
        text = json.dumps(frame, separators=separators)
        assert c.decode_media_payload(text, MAX_MEDIA_BYTES * 2) == audio


@pytest.mark.parametrize(
    "text",
    [
        '{"event":"media","media":{"payload":"AAAA"},"event":"mark"}',  # duplicate: last wins
        '{"event":"media","media":{"payload":"AAAA","payload":"BBBB"}}',
        '{"event":"media","media":{"payload":"AA\\u0041A"}}',  # an escape
        '{"event":"media","media":{"payload":"AAAA"}} x',
        '{"event":"media","media":{"payload":"AAAA",}}',
        '{"event":"media","media":{"payload":"AAA"}}',  # bad padding
        '{"event":"media","media":{"payload":"AA=A"}}',
        '{"event":"media","media":{"payload":"AAAA"},"n":NaN}',
        '{"event":"media","media":{"payload":"AAAA"},"n":01}',
        '{"event":"media","media":{"payload":"AAAA"},"list":[1]}',
        '{"event":"media","media":{"payload":"AAAA"},"s":"\u00e9"}',  # not ASCII
        '{"event":"media","media":{"payload":"AAAA"},"s":"a\tb"}',  # a raw control character
        '{"event":"media","media":{}}',
        '{"event":"media"}',
        '{"media":{"payload":"AAAA"}}',
        "",
    ],
)
def test_the_c_fast_path_declines_what_it_does_not_read_itself(text: str) -> None:
    c, _ = both()
    assert c.decode_media_payload(text, 100) is None


def test_an_oversized_payload_is_left_to_the_full_parser(impl: ModuleType) -> None:
    text = json.dumps({"event": "media", "media": {"payload": "AAAA" * 10}})
    assert impl.decode_media_payload(text, 39) is None
    assert impl.decode_media_payload(text, 40) == bytes(30)


# -- WebSocket client frames ---------------------------------------------------------------


def read_frame(data: bytes) -> Frame:
    """The frame as websockets' own parser reads it (as a server: masked frames)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("incomplete frame")


@settings(max_examples=200)
@given(
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY]),
    size=st.one_of(st.integers(0, 300), st.sampled_from([125, 126, 127, 65535, 65536, 70001])),
    key=st.binary(min_size=4, max_size=4),
    seed=st.integers(0, 255),
)
def test_websocket_frames_are_the_same_in_both_and_read_back(
    opcode: Opcode, size: int, key: bytes, seed: int
) -> None:
    c, py = both()
    payload = bytes((seed + i * 7) & 0xFF for i in range(size))
    frame = c.ws_client_frame(int(opcode), payload, key)
    assert frame == py.ws_client_frame(int(opcode), memoryview(payload), key)
    assert frame[len(frame) - size - 4 : len(frame) - size] == key
    parsed = read_frame(frame)
    assert (parsed.opcode, parsed.fin, bytes(parsed.data)) == (opcode, True, payload)


def test_websocket_frame_arguments_are_checked(impl: ModuleType) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        impl.ws_client_frame(1, b"x", b"abc")
    with pytest.raises(ValueError, match="opcode"):
        impl.ws_client_frame(16, b"x", b"abcd")


def test_mask_keys_come_from_a_pool_and_differ() -> None:
    keys = speedups.MaskKeys()
    drawn = [keys.next() for _ in range(3 * speedups.MASK_POOL_BYTES // 4)]  # three refills
    assert all(len(key) == 4 for key in drawn)
    assert len(set(drawn)) > len(drawn) * 0.99  # 32-bit random keys: repeats are rare


# -- WebSocket server frames ---------------------------------------------------------------


@st.composite
def server_frame_bytes(draw: st.DrawFn) -> bytes:
    """Frames as a server sends them (now and then one it must not), cut anywhere."""
    frames = []
    for _ in range(draw(st.integers(0, 5))):
        first = draw(st.sampled_from([0x81, 0x82, 0x81, 0x82, 0x01, 0x80, 0x89, 0xC1, 0x83]))
        if first & 0x0F == 1 and draw(st.booleans()):
            payload = draw(st.text(max_size=40)).encode()
        else:
            payload = draw(st.binary(max_size=40) | st.sampled_from([b"\xc3\x28", b"t" * 300]))
        size = len(payload)
        masked = 0x80 if draw(st.integers(0, 9)) == 0 else 0
        wide = draw(st.sampled_from([0, 0, 2, 8]))
        if wide == 8 or size > 0xFFFF:
            head = struct.pack("!BBQ", first, masked | 127, size)
        elif wide == 2 or size > 125:
            head = struct.pack("!BBH", first, masked | 126, size)
        else:
            head = bytes((first, masked | size))
        frames.append(head + (b"abcd" if masked else b"") + payload)
    data = b"".join(frames)
    return data[: draw(st.integers(0, len(data)))]


@settings(max_examples=500)
@given(data=server_frame_bytes(), start=st.integers(0, 60), max_size=st.integers(0, 400))
def test_server_frames_split_the_same_in_both(data: bytes, start: int, max_size: int) -> None:
    c, py = both()
    start = min(start, len(data))
    got = outcome(c.ws_server_frames, data, start, max_size)
    assert got == outcome(py.ws_server_frames, bytearray(data), start, max_size)
    assert got == outcome(py.ws_server_frames, memoryview(data), start, max_size)


def test_server_frames_split_only_final_unmasked_text_and_binary(impl: ModuleType) -> None:
    text, binary = b"\x81\x02hi", b"\x82\x7e\x00\x03abc"
    assert impl.ws_server_frames(text + binary, 0, 100) == (["hi", b"abc"], 11)
    assert impl.ws_server_frames(text + binary, 4, 100) == ([b"abc"], 11)
    for other in (b"\x89\x00", b"\x01\x01a", b"\xc1\x01a", b"\x81\x81abcd\x00", b"\x81\x02\xc3("):
        assert impl.ws_server_frames(text + other + text, 0, 100) == (["hi"], 4)
    assert impl.ws_server_frames(text + binary[:5], 0, 100) == (["hi"], 4)  # incomplete
    assert impl.ws_server_frames(binary, 0, 2) == ([], 0)  # over max_size
    with pytest.raises(ValueError, match="start"):
        impl.ws_server_frames(text, 5, 100)
    with pytest.raises(ValueError, match="max_size"):
        impl.ws_server_frames(text, 0, -1)


# -- the agent link writes its own text frames ------------------------------------------------


async def test_a_real_websockets_server_reads_every_frame_the_link_writes_in_order() -> None:
    received: list[str] = []
    done = asyncio.Event()

    async def agent(connection: ServerConnection) -> None:
        await connection.ping()  # answered by the protocol object, between the link's frames
        async for message in connection:
            received.append(str(message))
            if len(received) == len(sent):
                done.set()

    sizes = [0, 1, 125, 126, 127, 4000, 65535, 65536, 200_000]
    sent = [json.dumps({"n": n, "pad": "é" * (size // 2)}) for n, size in enumerate(sizes)]
    async with serve(agent, "127.0.0.1", 0, max_size=2**20) as server:
        port = server.sockets[0].getsockname()[1]
        link = await connect_agent(
            f"ws://127.0.0.1:{port}/", {}, lambda text: None, lambda code, reason: None,
            allow_private=True,
        )  # fmt: skip
        try:
            for n, text in enumerate(sent):
                assert link.send_text(text.encode() if n % 2 else text)
                await asyncio.sleep(0)
            await asyncio.wait_for(done.wait(), 10)
        finally:
            link.close()
            link.abort()
    assert received == sent
    assert link.frames_out == len(sent)


# -- shared media sockets: batched reads and writes ------------------------------------


def udp_socket(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def drain(impl: ModuleType, sock: socket.socket, want: int) -> list[tuple[bytes, bytes]]:
    """What ``recv_batch`` reads until ``want`` datagrams came (loopback delivers at once)."""
    got: list[tuple[bytes, bytes]] = []
    for _ in range(200):
        got += impl.recv_batch(sock, 64)
        if len(got) >= want:
            break
        time.sleep(0.005)
    return got


def test_address_keys_pack_the_address_then_the_port() -> None:
    assert speedups.address_key("127.0.0.1", 5004) == bytes([127, 0, 0, 1, 0x13, 0x8C])
    assert len(speedups.address_key("::1", 5004)) == 18
    assert speedups.key_address(speedups.address_key("::1", 6000)) == ("::1", 6000)
    for host, port in (("example.com", 5004), ("127.0.0.1", 70000), ("1.2.3", 1)):
        with pytest.raises(ValueError):
            speedups.address_key(host, port)


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_recv_batch_reads_what_waits_with_each_source_key(
    impl: ModuleType, family: int, host: str
) -> None:
    with (
        udp_socket(family, host) as port,
        udp_socket(family, host) as a,
        udp_socket(family, host) as b,
    ):
        assert impl.recv_batch(port, 64) == []  # nothing waiting: no error, no wait
        for n in range(100):
            (a if n % 2 else b).sendto(b"x%d" % n, port.getsockname()[:2])
        first = drain(impl, port, 64)[:64]
        assert len(impl.recv_batch(port, 1)) == 1  # count bounds a batch
        rest = drain(impl, port, 35)
        got = first + rest
        assert [data for data, _ in got][:64] == [b"x%d" % n for n in range(64)]
        assert len(got) == 99  # the one read alone above is the 65th
        keys = {speedups.address_key(*s.getsockname()[:2]) for s in (a, b)}
        assert {key for _, key in got} == keys


def test_recv_batch_cuts_an_oversized_datagram_one_byte_over_the_limit(impl: ModuleType) -> None:
    with udp_socket() as port, udp_socket() as peer:
        peer.sendto(bytes(3000), port.getsockname())
        peer.sendto(bytes(2048), port.getsockname())
        assert [len(data) for data, _ in drain(impl, port, 2)] == [2049, 2048]


def test_recv_batch_refuses_a_count_outside_one_to_sixty_four() -> None:
    c, py = both()
    with udp_socket() as port:
        for count in (0, 65):
            assert outcome(c.recv_batch, port, count) == outcome(py.recv_batch, port, count)
            assert outcome(py.recv_batch, port, count)[0] == "error"


def test_send_batch_sends_each_datagram_to_its_own_destination(impl: ModuleType) -> None:
    with udp_socket() as port, udp_socket() as a, udp_socket() as b:
        key_a = speedups.address_key(*a.getsockname())
        key_b = speedups.address_key(*b.getsockname())
        items = [(b"to-a-%d" % n, key_a) for n in range(70)] + [(b"to-b", key_b)]
        items.append((b"wrong family", speedups.address_key("::1", 9)))  # skipped
        assert impl.send_batch(port, items) == 71
        assert [d for d, _ in drain(impl, a, 70)] == [b"to-a-%d" % n for n in range(70)]
        assert drain(impl, b, 1) == [(b"to-b", speedups.address_key(*port.getsockname()))]


def test_send_batch_refuses_what_is_not_a_list_of_bytes_and_key_pairs() -> None:
    c, py = both()
    with udp_socket() as port:
        for items in ((), [b"no key"], [("text", b"123456")]):
            assert outcome(c.send_batch, port, items) == outcome(py.send_batch, port, items)
            assert outcome(py.send_batch, port, items)[0] == "error"


# -- resampling PCM16 -----------------------------------------------------------------------


def resampler_filter(ratio: int, *, upsampling: bool) -> bytes:
    """The filter ``StreamingResampler`` hands over: phase after phase, or reversed."""
    taps = lowpass(ratio)
    if not upsampling:
        return bytes(taps[::-1].tobytes())
    padded = np.concatenate((taps, np.zeros(ratio - 1)))
    return bytes(np.concatenate([padded[p::ratio] * ratio for p in range(ratio)]).tobytes())


def samples_within_one(a: bytes, b: bytes) -> bool:
    """The same length, and no sample apart by more than one (the order a sum is added
    in may round a half the other way)."""
    x, y = (np.frombuffer(v, dtype="<i2").astype(np.int32) for v in (a, b))
    return x.size == y.size and bool(np.all(np.abs(x - y) <= 1))


@settings(max_examples=150)
@given(
    ratio=st.sampled_from([2, 3, 6]),
    chunks=st.lists(st.binary(max_size=64).map(lambda b: b[: len(b) // 2 * 2]), max_size=6),
    loud=st.booleans(),
)
def test_interpolation_is_the_same_in_both_chunk_by_chunk(
    ratio: int, chunks: list[bytes], loud: bool
) -> None:
    c, py = both()
    phases = resampler_filter(ratio, upsampling=True)
    histories = [bytearray(32 * 8), bytearray(32 * 8)]
    for chunk in chunks:
        if loud:  # full-scale steps: the filter's overshoot is clipped, the same in both
            chunk = bytes(b if i % 2 else (0x7F if b & 1 else 0x80) for i, b in enumerate(chunk))
        outs = [
            m.fir_interpolate(phases, ratio, h, chunk)
            for m, h in zip((c, py), histories, strict=True)
        ]
        assert len(outs[0]) == len(chunk) * ratio
        assert samples_within_one(*outs)
        # the history is the last 32 inputs, exactly: what the next chunk convolves with
        assert histories[0] == histories[1]


@settings(max_examples=150)
@given(
    ratio=st.sampled_from([2, 3, 6]),
    chunks=st.lists(st.binary(max_size=200).map(lambda b: b[: len(b) // 2 * 2]), max_size=6),
    first=st.integers(0, 7),
)
def test_decimation_is_the_same_in_both_chunk_by_chunk(
    ratio: int, chunks: list[bytes], first: int
) -> None:
    c, py = both()
    taps = resampler_filter(ratio, upsampling=False)
    size = 32 * ratio  # the filter's 32·R + 1 taps keep 32·R inputs of history
    histories = [bytearray(size * 8), bytearray(size * 8)]
    for chunk in chunks:
        outs = [
            m.fir_decimate(taps, ratio, h, first, chunk)
            for m, h in zip((c, py), histories, strict=True)
        ]
        count = len(chunk) // 2
        assert len(outs[0]) // 2 == ((count - 1 - first) // ratio + 1 if first < count else 0)
        assert samples_within_one(*outs)
        assert histories[0] == histories[1]


def test_resampling_a_sine_gives_the_same_samples_in_both() -> None:
    """A tone through the C loop and through numpy, 20 ms at a time, sample for sample."""
    c, py = both()
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 20000).astype("<i2").tobytes()
    phases = resampler_filter(2, upsampling=True)
    up_histories = [bytearray(32 * 8), bytearray(32 * 8)]
    ups = [
        b"".join(m.fir_interpolate(phases, 2, h, tone[i : i + 320]) for i in range(0, 16000, 320))
        for m, h in zip((c, py), up_histories, strict=True)
    ]
    assert ups[0] == ups[1]
    taps = resampler_filter(2, upsampling=False)
    down_histories = [bytearray(64 * 8), bytearray(64 * 8)]
    downs = [
        b"".join(m.fir_decimate(taps, 2, h, 0, ups[0][i : i + 640]) for i in range(0, 32000, 640))
        for m, h in zip((c, py), down_histories, strict=True)
    ]
    assert downs[0] == downs[1]
    back = np.frombuffer(downs[0], dtype="<i2").astype(np.float64)[64:]  # past the delay
    sent = np.frombuffer(tone, dtype="<i2").astype(np.float64)[64 - 32 : 8000 - 32]
    assert np.max(np.abs(back - sent)) < 200  # 2 ms later, the same tone


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda m: m.fir_interpolate(b"\0" * 8, 2, bytearray(0), b"\0\0"), "whole number of"),
        (lambda m: m.fir_interpolate(b"\0" * 24, 2, bytearray(8), b"\0\0"), "whole number of"),
        (lambda m: m.fir_interpolate(b"\0" * 32, 2, bytearray(0), b"\0\0"), "history"),
        (lambda m: m.fir_interpolate(b"\0" * 32, 2, bytearray(8), b"\0\0\0"), "even byte count"),
        (lambda m: m.fir_interpolate(b"\0" * 32, 0, bytearray(8), b"\0\0"), "ratio"),
        (lambda m: m.fir_decimate(b"\0" * 24, 2, bytearray(16), -1, b"\0\0"), "negative"),
        (lambda m: m.fir_decimate(b"\0" * 20, 2, bytearray(16), 0, b"\0\0"), "whole number of"),
        (lambda m: m.fir_decimate(b"", 2, bytearray(0), 0, b"\0\0"), "whole number of"),
    ],
)
def test_resampling_arguments_are_checked_the_same_in_both(call: Any, message: str) -> None:
    c, py = both()
    assert outcome(call, c) == outcome(call, py)
    kind, (name, text) = outcome(call, py)
    assert kind == "error" and name == "ValueError" and message in text


def test_resampling_needs_a_writable_history(impl: ModuleType) -> None:
    with pytest.raises(BufferError, match="not writable"):
        impl.fir_interpolate(b"\0" * 32, 2, bytes(8), b"\0\0")
    with pytest.raises(BufferError, match="not writable"):
        impl.fir_decimate(b"\0" * 24, 2, bytes(16), 0, b"\0\0")
